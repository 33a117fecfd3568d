"""ImageNet-ReaL labels (Beyer et al., arXiv 2006.07159): several valid labels per ImageNet validation image.

``real.json`` is a list with one entry per validation image, in sorted file-name order (``ILSVRC2012_val_00000001``
first); each entry lists the valid class indices, and an empty list marks an image the ReaL raters dropped. ReaL
top-1 counts a prediction as correct when it is any of the image's valid labels, over the images with a
non-empty list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from trainkit.data import DataError


def read_real_json(path: str | os.PathLike) -> list[list[int]]:
    """Read and check ``real.json``: a JSON list of lists of class indices."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ReaL labels file not found: {path} (ImageNet-ReaL's real.json)")
    try:
        labels = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); expected ImageNet-ReaL's real.json") from None
    if not isinstance(labels, list) or not all(
        isinstance(entry, list) and all(isinstance(c, int) for c in entry) for entry in labels
    ):
        raise DataError(f"{path} must hold a list with one list of class indices per validation image")
    return labels


def align_real_labels(labels: Sequence[list[int]], image_paths: Sequence[str], source: str = "real.json"):
    """Reorder ``labels`` (sorted file-name order) to the order of ``image_paths`` (the dataset's order).

    The validation images usually sit in class folders, so the dataset's order (class, then file) differs from
    the file-name order ``real.json`` follows; images are matched by file name.
    """
    names = [Path(p).name for p in image_paths]
    if len(labels) != len(names):
        raise DataError(
            f"{source} has {len(labels)} entries but the validation set has {len(names)} images; ReaL labels "
            "need the full, unmodified ImageNet validation set"
        )
    position = {name: i for i, name in enumerate(sorted(names))}
    if len(position) != len(names):
        raise DataError("validation file names are not unique, so ReaL labels cannot be matched by file name")
    return [list(labels[position[name]]) for name in names]


def load_real_labels(path: str | os.PathLike, image_paths: Sequence[str]) -> list[list[int]]:
    """``real.json`` in the order of ``image_paths`` (for an ImageFolder: ``[p for p, _ in dataset.samples]``)."""
    return align_real_labels(read_real_json(path), image_paths, source=str(path))


def real_top1(predictions: Sequence[int], real_labels: Sequence[Sequence[int]]) -> tuple[float, int]:
    """ReaL top-1 in percent and the number of images it is measured on (those with at least one label)."""
    if len(predictions) != len(real_labels):
        raise ValueError(f"{len(predictions)} predictions for {len(real_labels)} ReaL label lists")
    scored = [(pred, valid) for pred, valid in zip(predictions, real_labels) if valid]
    if not scored:
        return float("nan"), 0
    hits = sum(int(pred) in valid for pred, valid in scored)
    return 100.0 * hits / len(scored), len(scored)
