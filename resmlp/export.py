"""Export a ResMLP to ONNX (and optionally TorchScript): ``python -m resmlp.export``.

    python -m resmlp.export --model resmlp_s12 --checkpoint resmlp_12_no_dist.pth --out resmlp_s12.onnx
    python -m resmlp.export --model resmlp_mini --out mini.onnx --torchscript mini.pt --batch-size 8

The exporters see the reference formulation (the CPU fast path steps aside by itself). The ONNX graph takes
``images`` (B, C, H, W) with a dynamic batch and returns ``logits``; when onnxruntime is installed the command runs
the exported graph once and reports its largest difference from eager PyTorch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from .cli import UsageError, UserError, add_debug_flag, run_main
from .factory import create_model
from .registry import list_models


def export_onnx(
    model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike, *, dynamo: bool = False
) -> Path:
    """Write ``model`` (eval mode) to ONNX at ``path`` with a dynamic batch dimension; returns the path."""
    path = Path(path)
    model = model.eval()
    if dynamo:
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            model, (example,), path, dynamo=True, input_names=["images"], output_names=["logits"],
            dynamic_shapes={"x": {0: batch}},
        )  # fmt: skip
    else:
        torch.onnx.export(
            model, (example,), path, dynamo=False, input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    return path


def export_torchscript(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``torch.jit.script(model)`` (eval mode) to ``path``; returns the path."""
    path = Path(path)
    torch.jit.script(model.eval()).save(str(path))
    return path


def onnxruntime_max_difference(path: str | os.PathLike, model: torch.nn.Module, example: torch.Tensor) -> float | None:
    """Largest absolute difference between onnxruntime on ``path`` and eager ``model``; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        expected = model.eval()(example)
    return float((torch.from_numpy(out) - expected).abs().max())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resmlp.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=f"preset name, one of {', '.join(list_models())}")
    parser.add_argument("--checkpoint", help="weights to load (any format resmlp.create_model reads); default: random")
    parser.add_argument("--checkpoint-key", help="entry of a container checkpoint (teacher, student, model_ema)")
    parser.add_argument("--num-classes", type=int, help="classifier outputs (default: the checkpoint's)")
    parser.add_argument("--img-size", type=int, nargs="+", help="input size: one int or height width")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--torchscript", help="also write a TorchScript file here")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="batch of the example input (the batch stays dynamic)"
    )
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter (onnxscript)")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.model not in list_models():
        raise UsageError(f"unknown preset {args.model!r}; choose one of {', '.join(list_models())}")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise UserError(f"checkpoint not found: {args.checkpoint}; pass an existing weights file")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    overrides = {}
    if args.img_size:
        if len(args.img_size) not in (1, 2):
            raise UsageError(f"--img-size takes one int or height width, got {args.img_size}")
        overrides["img_size"] = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    for target in (args.out, args.torchscript):
        if target is not None and not os.access(Path(target).resolve().parent, os.W_OK):
            raise UserError(f"cannot write {target}: its folder does not exist or is read-only; choose another path")
    try:
        model = create_model(
            args.model, checkpoint=args.checkpoint, checkpoint_key=args.checkpoint_key,
            num_classes=args.num_classes, **overrides,
        ).eval()  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err)) from err
    cfg = model.config
    example = torch.randn(args.batch_size, cfg.in_chans, *cfg.image_hw)
    if args.dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise UserError("--dynamo needs onnxscript: pip install onnxscript, or drop --dynamo") from err
    path = export_onnx(model, example, args.out, dynamo=args.dynamo)
    difference = onnxruntime_max_difference(path, model, example)
    checked = (
        "onnxruntime not installed, not checked" if difference is None else f"onnxruntime max |diff| {difference:.2e}"
    )
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB; {checked})")
    if args.torchscript:
        ts_path = export_torchscript(model, args.torchscript)
        print(f"wrote {ts_path} (TorchScript)")
    return 0


if __name__ == "__main__":
    run_main(main, prog="resmlp.export")
