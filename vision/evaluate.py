"""Top-1 / top-5 evaluation with the paper's protocol, and the ``python -m vision.evaluate`` command line.

    python -m vision.evaluate --checkpoint runs/digits/model.pth               # the run's data and eval settings
    python -m vision.evaluate --checkpoint model.pth --data imagenet:/data/imagenet --real-labels real.json
    python -m vision.evaluate --checkpoint model.pth --data imagenetv2:/data/imagenetv2-matched-frequency

Images are resized to ``int(size / crop_ratio)`` (bicubic) and centre-cropped to ``size``. Unless told otherwise
(``--crop-ratio``, ``--interpolation``, ``--data``, ``--ignore-run-config``), a checkpoint written by
``vision.train`` is evaluated as its run evaluated it: the crop ratio, interpolation, data and normalisation come
from the run folder's ``config.yaml``; without one the paper's crop ratio 0.9 applies (resmlp_spec §1.11). The
command prints which crop and resize it used. Accuracies are in percent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from resmlp import ResMLP, ResMLPConfig, create_model, list_models, read_checkpoint
from resmlp.checkpoint import CheckpointError, load_weights
from resmlp.cli import UsageError, UserError, add_debug_flag, command
from resmlp.zoo import is_tag, resolve_checkpoint, split_name
from trainkit.data import GRAMMAR
from trainkit.preflight import check_output_dir

from .data import (
    CheckedImageFolder,
    build_dataset,
    build_eval_transform,
    check_num_classes,
    load_real_labels,
    parse_data_spec,
)
from .data.real_labels import real_top1
from .data.transforms import eval_resize_size, normalization
from .run_config import RunSettings, read_run_settings

DEFAULT_CROP_RATIO = 0.9
SKIP_FLAG = "--skip-corrupt-images"


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    accelerator: Any | None = None,
    *,
    real_labels: Sequence[Sequence[int]] | None = None,
) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean cross-entropy of ``model`` over ``loader``.

    Args:
        model: Returns logits ``(B, C)``. Put in eval mode for the pass; its previous mode is restored.
        loader: Yields ``(images, targets)`` in dataset order. With ``accelerator``, pass the loader returned by
            ``accelerator.prepare``: ``gather_for_metrics`` then drops the samples padded onto the last batch,
            so every image counts exactly once.
        accelerator: An ``accelerate.Accelerator``, or None for a single process (batches go to the model's
            device).
        real_labels: ImageNet-ReaL label lists in dataset order (``vision.data.load_real_labels``); adds
            ``real_top1`` and ``real_images``.

    Returns:
        ``top1``, ``top5``, ``loss`` and ``images`` (the number evaluated). With fewer than 5 classes, top-5 is
        top-``C`` (100%). Targets of -1 (unreadable images under ``data.skip_corrupt_images``) are left out of
        every metric and counted in ``skipped``.
    """
    was_training = model.training
    model.eval()
    first = next(model.parameters(), None)
    device = None if accelerator is not None else (first.device if first is not None else torch.device("cpu"))
    columns: dict[str, list[torch.Tensor]] = {"loss": [], "top1": [], "top5": [], "pred": [], "valid": []}
    for images, targets in loader:
        if device is not None:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        logits = model(images)
        valid = targets >= 0
        safe_targets = targets.clamp(min=0)
        topk = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        # Integer flags, not bool: gloo (CPU) cannot all-gather bool tensors.
        row = {
            "loss": F.cross_entropy(logits.float(), safe_targets, reduction="none"),
            "top1": (topk[:, 0] == safe_targets).long(),
            "top5": (topk == safe_targets[:, None]).any(dim=-1).long(),
            "pred": topk[:, 0],
            "valid": valid.long(),
        }
        if accelerator is not None:
            row = accelerator.gather_for_metrics(row)
        for name, value in row.items():
            columns[name].append(value.cpu())
    model.train(was_training)
    if not columns["valid"]:
        raise ValueError("the evaluation loader yielded no batches")
    data = {name: torch.cat(values) for name, values in columns.items()}
    valid = data["valid"].bool()
    count = int(valid.sum())
    results = {"images": float(count)}
    for name in ("top1", "top5"):
        results[name] = 100.0 * data[name][valid].float().mean().item() if count else math.nan
    results["loss"] = data["loss"][valid].mean().item() if count else math.nan
    if count < len(valid):
        results["skipped"] = float(len(valid) - count)
    if real_labels is not None:
        results["real_top1"], real_count = real_top1(data["pred"].tolist(), real_labels)
        results["real_images"] = float(real_count)
    return results


def load_model_for_eval(
    checkpoint: str | os.PathLike, model_name: str | None = None, *, key: str | None = None, **overrides
) -> nn.Module:
    """A ResMLP from ``checkpoint``: its stored config (our format), or the preset ``model_name`` for raw files.

    ``key`` selects a container entry (``model_ema``, ``student`` ...); it is refused when the file has no such
    entry, whatever its format.
    """
    if model_name is not None:
        return create_model(model_name, checkpoint=checkpoint, checkpoint_key=key, **overrides)
    state_dict, stored = read_checkpoint(checkpoint, key=key)
    if stored is None:
        raise UsageError(
            f"{checkpoint} stores no model config (a raw deit/timm file?); pass --model with one of: "
            f"{', '.join(list_models())}"
        )
    model = ResMLP(ResMLPConfig.from_dict({**stored, **overrides}))
    load_weights(model, state_dict)
    return model


def build_eval_loader(
    data_spec: str,
    model: nn.Module,
    *,
    img_size: int | tuple[int, int],
    crop_ratio: float,
    batch_size: int,
    num_workers: int = 0,
    builtin_size: int = 32,
    interpolation: str = "bicubic",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    skip_corrupt_images: bool = False,
) -> DataLoader:
    """The validation split of ``data_spec`` (the data grammar) preprocessed for ``model``.

    The built-in datasets are rendered at ``builtin_size`` with the model's channel count and otherwise the
    ``DataConfig`` defaults (procedural: 2,000 validation images of seed 0), as in the default recipes.
    """
    config = model.config
    stats = {"mean": tuple(mean), "std": tuple(std)} if mean is not None and std is not None else {}
    data = parse_data_spec(
        data_spec,
        builtin_channels=config.in_chans,
        builtin_size=builtin_size,
        skip_corrupt_images=skip_corrupt_images,
        **stats,
    )
    mean, std = normalization(data, config.in_chans)
    transform = build_eval_transform(
        img_size=img_size, crop_ratio=crop_ratio, interpolation=interpolation, mean=mean, std=std
    )
    dataset = build_dataset(data, "val", transform, skip_option=SKIP_FLAG)
    if not config.num_classes:
        raise CheckpointError("the model has no classifier head (a DINO or feature checkpoint); evaluate a classifier")
    check_num_classes(config.num_classes, dataset, "the model in the checkpoint")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vision.evaluate",
        description=__doc__.split("\n\n")[0],
        epilog=f"Data grammar (--data): {GRAMMAR}. Defaults marked 'run' come from the checkpoint's run folder.",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="model file (our format, or deit/timm with --model), or a step folder"
    )
    parser.add_argument(
        "--checkpoint-key", default=None, help="container entry to read (model_ema, state_dict ...); refused if absent"
    )
    parser.add_argument("--data", default=None, help=f"{GRAMMAR} (default: run; evaluation reads the val split)")
    parser.add_argument("--model", default=None, help="resmlp preset; needed only for files without a stored config")
    parser.add_argument("--img-size", type=int, default=None, help="input size in pixels (default: the model's)")
    parser.add_argument(
        "--crop-ratio",
        type=float,
        default=None,
        help=f"eval centre-crop ratio (default: run, else {DEFAULT_CROP_RATIO})",
    )
    parser.add_argument(
        "--interpolation", choices=("bicubic", "bilinear"), default=None, help="resize (default: run, else bicubic)"
    )
    parser.add_argument("--ignore-run-config", action="store_true", help="use only these options and the defaults")
    parser.add_argument("--real-labels", default=None, help="ImageNet-ReaL real.json (with imagenet:ROOT)")
    parser.add_argument(
        "--builtin-size", type=int, default=None, help="render size of digits/procedural (default: run, else 32)"
    )
    parser.add_argument(
        SKIP_FLAG, action="store_true", help="leave unreadable images out (counted) instead of stopping"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    add_debug_flag(parser)
    return parser


def _checkpoint_file(path: Path) -> Path:
    if path.is_dir():
        inside = path / "model.safetensors"
        if inside.is_file():
            return inside
        raise UserError(f"--checkpoint {path} is a folder without model.safetensors; pass the model file")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; pass an existing model file (e.g. OUTPUT_DIR/model.pth)")
    return path


@command("vision.evaluate")
def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a checkpoint from the command line; a user error is one line (status 2: usage, 1: failure)."""
    args = _parser().parse_args(argv)
    if is_tag(args.checkpoint):  # released weights by name (resmlp_s12.fb_in1k): fetch them, the tag names the preset
        args.model = args.model or split_name(args.checkpoint)[0]
        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    checkpoint = _checkpoint_file(Path(args.checkpoint))
    if args.json:  # before the evaluation, not after it
        check_output_dir(Path(args.json).parent, subfolders=())
    run = RunSettings() if args.ignore_run_config else read_run_settings(args.checkpoint)
    overrides = {"img_size": args.img_size} if args.img_size else {}
    model_name = args.model or (run.get("model_name") if checkpoint.suffix == ".safetensors" else None)
    if model_name and checkpoint.suffix == ".safetensors" and not args.img_size and run.get("img_size"):
        overrides["img_size"] = run.get("img_size")
    model = load_model_for_eval(checkpoint, model_name, key=args.checkpoint_key, **overrides).to(args.device)
    data = args.data or run.get("dataset")
    if data is None:
        raise UsageError(f"pass --data ({GRAMMAR}); {checkpoint} has no run folder to take it from")
    chosen = {
        "crop_ratio": (args.crop_ratio, run.get("crop_ratio"), DEFAULT_CROP_RATIO),
        "interpolation": (args.interpolation, run.get("interpolation"), "bicubic"),
        "builtin_size": (args.builtin_size, run.get("builtin_size"), 32),
    }
    settings = {name: next(v for v in values if v is not None) for name, values in chosen.items()}
    origin = {name: ("option" if values[0] is not None else "run" if values[1] is not None else "default")
              for name, values in chosen.items()}  # fmt: skip
    if not 0 < settings["crop_ratio"] <= 1:
        raise UsageError(f"--crop-ratio must lie in (0, 1], got {settings['crop_ratio']}")
    img_size = model.config.img_size
    loader = build_eval_loader(
        data,
        model,
        img_size=img_size,
        crop_ratio=settings["crop_ratio"],
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        builtin_size=settings["builtin_size"],
        interpolation=settings["interpolation"],
        mean=run.get("mean"),
        std=run.get("std"),
        skip_corrupt_images=args.skip_corrupt_images,
    )
    print(describe_transform(img_size, settings["crop_ratio"], settings["interpolation"], origin, run))
    real = None
    if args.real_labels:
        if not isinstance(loader.dataset, CheckedImageFolder):
            raise UsageError("--real-labels needs the ImageNet validation folder: --data imagenet:ROOT")
        real = load_real_labels(args.real_labels, [path for path, _ in loader.dataset.samples])
    results = evaluate(model, loader, real_labels=real)
    formats = {"loss": "{:.4f}", "images": "{:.0f}", "skipped": "{:.0f}", "real_images": "{:.0f}"}
    summary = " | ".join(f"{k} {formats.get(k, '{:.2f}').format(v)}" for k, v in results.items())
    print(f"{data}: {summary}")
    if args.json:
        record = {**results, "checkpoint": str(args.checkpoint), "data": data, **settings}
        record |= {"resize": eval_resize_size(_side(img_size), settings["crop_ratio"]), "crop": _side(img_size)}
        record["config"] = str(run.path) if run.path else None
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


def _side(img_size: int | tuple[int, int]) -> int:
    return img_size if isinstance(img_size, int) else min(img_size)


def describe_transform(
    img_size: int | tuple[int, int], crop_ratio: float, interpolation: str, origin: dict[str, str], run: RunSettings
) -> str:
    """One line: the resize and crop used, and where the crop ratio came from."""
    side = _side(img_size)
    source = {"option": "from the command line", "run": f"from {run.path}", "default": "the default"}
    return (
        f"eval transform: resize the short side to {eval_resize_size(side, crop_ratio)} px ({interpolation}), "
        f"centre crop {side} px: crop ratio {crop_ratio} ({source[origin['crop_ratio']]})"
    )


if __name__ == "__main__":
    main()
