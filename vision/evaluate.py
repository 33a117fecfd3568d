"""Top-1 / top-5 evaluation with the paper's protocol, and the ``python -m vision.evaluate`` command line.

    python -m vision.evaluate --checkpoint model.pth --data imagenet:/data/imagenet --real-labels real.json
    python -m vision.evaluate --checkpoint model.pth --data imagenetv2:/data/imagenetv2-matched-frequency
    python -m vision.evaluate --checkpoint outputs/digits/model.pth --data digits --json metrics.json

Images are resized to ``int(size / crop_ratio)`` (bicubic) and centre-cropped to ``size``, crop ratio 0.9
(resmlp_spec §1.11). Accuracies are in percent.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from resmlp import ResMLP, ResMLPConfig, create_model, list_models, read_checkpoint
from resmlp.checkpoint import CheckpointError, load_weights

from .data import DataError, build_dataset, build_eval_transform, check_num_classes, load_real_labels, parse_data_spec
from .data.folders import CheckedImageFolder
from .data.real_labels import real_top1
from .data.transforms import normalization


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


def load_model_for_eval(checkpoint: str | os.PathLike, model_name: str | None = None, **overrides) -> nn.Module:
    """A ResMLP from ``checkpoint``: its stored config (our format), or the preset ``model_name`` for raw files."""
    if model_name is not None:
        return create_model(model_name, checkpoint=checkpoint, **overrides)
    state_dict, stored = read_checkpoint(checkpoint)
    if stored is None:
        raise CheckpointError(
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
) -> DataLoader:
    """The validation split of ``data_spec`` (see ``parse_data_spec``) preprocessed for ``model``.

    The built-in datasets are rendered at ``builtin_size`` with the model's channel count and otherwise the
    ``DataConfig`` defaults (procedural: 2,000 validation images of seed 0), as in the default recipes.
    """
    config = model.config
    data = parse_data_spec(data_spec, builtin_channels=config.in_chans, builtin_size=builtin_size)
    mean, std = normalization(data, config.in_chans)
    transform = build_eval_transform(img_size=img_size, crop_ratio=crop_ratio, mean=mean, std=std)
    dataset = build_dataset(data, "val", transform)
    if not config.num_classes:
        raise CheckpointError("the model has no classifier head (a DINO or feature checkpoint); evaluate a classifier")
    check_num_classes(config.num_classes, dataset, "the model in the checkpoint")
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vision.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model file (our format, or deit/timm with --model)")
    parser.add_argument(
        "--data",
        required=True,
        help="digits | procedural | cifar10:ROOT | cifar100:ROOT | imagenet:ROOT (reads ROOT/val) | imagenetv2:ROOT",
    )
    parser.add_argument("--model", default=None, help="resmlp preset; needed only for files without a stored config")
    parser.add_argument("--img-size", type=int, default=None, help="input size in pixels (default: the model's)")
    parser.add_argument("--crop-ratio", type=float, default=0.9, help="eval centre-crop ratio (paper: 0.9)")
    parser.add_argument("--real-labels", default=None, help="ImageNet-ReaL real.json (with imagenet:ROOT)")
    parser.add_argument("--builtin-size", type=int, default=32, help="render size of digits/procedural (px)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a checkpoint from the command line; bad input exits with status 2 and a one-line error."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
        overrides = {"img_size": args.img_size} if args.img_size else {}
        model = load_model_for_eval(args.checkpoint, args.model, **overrides).to(args.device)
        loader = build_eval_loader(
            args.data,
            model,
            img_size=model.config.img_size,
            crop_ratio=args.crop_ratio,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            builtin_size=args.builtin_size,
        )
        real = None
        if args.real_labels:
            if not isinstance(loader.dataset, CheckedImageFolder):
                raise DataError("--real-labels needs the ImageNet validation folder: --data imagenet:ROOT")
            real = load_real_labels(args.real_labels, [path for path, _ in loader.dataset.samples])
        results = evaluate(model, loader, real_labels=real)
    except (FileNotFoundError, DataError, CheckpointError, ValueError, KeyError) as err:
        message = str(err).strip("'\"").replace("\n", " ")
        parser.exit(2, f"error: {message}\n")
    formats = {"loss": "{:.4f}", "images": "{:.0f}", "skipped": "{:.0f}", "real_images": "{:.0f}"}
    summary = " | ".join(f"{k} {formats.get(k, '{:.2f}').format(v)}" for k, v in results.items())
    print(f"{args.data}: {summary}")
    if args.json:
        record = {**results, "checkpoint": str(args.checkpoint), "data": args.data, "crop_ratio": args.crop_ratio}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
