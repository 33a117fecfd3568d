"""Extract frozen pooled features once, across processes, and dump or reload them.

Under ``accelerate launch`` each process embeds its shard of the data and ``accelerator.gather_for_metrics``
assembles every feature exactly once: it drops the samples that even batching repeats to fill the last batch, which a
plain ``gather`` would count twice. The gathered bank is kept on the CPU (DINO keeps it on the GPU by default and
runs out of memory on ImageNet, dino#161).

Dumps use the reference file names (``trainfeat.pth``, ``trainlabels.pth``, ``testfeat.pth``, ``testlabels.pth``),
so features dumped by DINO's ``eval_knn.py --dump_features`` load too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from resmlp.cli import UserError

from .backbone import pooled_features

if TYPE_CHECKING:
    from accelerate import Accelerator

FEATURE_FILES = ("trainfeat.pth", "trainlabels.pth", "testfeat.pth", "testlabels.pth")


class FeatureDumpError(UserError, FileNotFoundError):
    """A ``--load-features`` folder that is not a complete, readable feature dump."""


META_FILE = "meta.json"


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    accelerator: Accelerator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features (N, D) float32 and labels (N,) int64 of every sample of ``loader``, on the CPU.

    With an ``accelerator``, ``loader`` must come from ``accelerator.prepare`` (so the processes share the data and
    ``gather_for_metrics`` knows the padding); every process receives the full bank. The order is that of the
    gathered batches, not of the dataset; features and labels stay paired. Samples labelled -1 (unreadable images
    skipped by the dataset) are left out. Put the backbone in eval mode first.
    """
    device = accelerator.device if accelerator is not None else next(backbone.parameters()).device
    features, labels = [], []
    for images, targets in loader:
        batch = pooled_features(backbone, images.to(device)).float()
        targets = targets.to(device)
        if accelerator is not None:
            batch, targets = accelerator.gather_for_metrics((batch.contiguous(), targets.contiguous()))
        features.append(batch.cpu())
        labels.append(targets.cpu())
    if not features:
        raise ValueError("the loader yielded no batch; is the dataset empty?")
    features, labels = torch.cat(features), torch.cat(labels).long()
    keep = labels >= 0  # -1: an unreadable image left out under --skip-corrupt-images / data.skip_corrupt_images
    return (features, labels) if bool(keep.all()) else (features[keep], labels[keep])


def save_features(
    directory: str | Path,
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
) -> Path:
    """Write the four tensors (reference names) and ``meta.json`` (sizes, classes) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, tensor in zip(FEATURE_FILES, (train_features, train_labels, test_features, test_labels)):
        torch.save(tensor.detach().cpu().contiguous(), directory / name)
    meta = {"num_train": len(train_features), "num_test": len(test_features), "dim": int(train_features.shape[1])}
    if num_classes is not None:
        meta["num_classes"] = int(num_classes)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def load_features(directory: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(train_features, train_labels, test_features, test_labels, num_classes)`` from a dump directory.

    ``num_classes`` comes from ``meta.json`` when present, else from the largest label.
    """
    directory = Path(directory)
    missing = [name for name in FEATURE_FILES if not (directory / name).is_file()]
    if missing:
        raise FeatureDumpError(
            f"{directory} is not a feature dump: it lacks {', '.join(missing)}; write one with --dump-features"
        )
    tensors = []
    for name in FEATURE_FILES:
        try:  # weights_only: a dump holds tensors, nothing that could run code
            tensors.append(torch.load(directory / name, map_location="cpu", weights_only=True))
        except Exception as err:
            reason = " ".join(str(err).split())[:200]
            raise FeatureDumpError(f"cannot read {directory / name} ({type(err).__name__}: {reason})") from None
        if not isinstance(tensors[-1], torch.Tensor):
            raise FeatureDumpError(f"{directory / name} holds a {type(tensors[-1]).__name__}, not a tensor")
    train_x, train_y, test_x, test_y = tensors
    meta_path = directory / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    num_classes = int(meta.get("num_classes", int(max(train_y.max(), test_y.max())) + 1))
    return train_x.float(), train_y.long(), test_x.float(), test_y.long(), num_classes
