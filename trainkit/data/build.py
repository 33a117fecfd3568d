"""``build_image_dataset``: one split of any dataset of the data grammar, with errors that name the fix.

Shared by vision (training, ``vision.evaluate``) and DINO (pretraining, the k-NN monitor, ``ssl_dino.knn`` and
``.linear``), so every command reads the same spec the same way. Unreadable images are an error naming the file
unless the caller turns skipping on (``on_corrupt``): ``replace`` serves the next readable image (training),
``mark`` serves a placeholder with target -1 that evaluation leaves out and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from .cifar import cifar_dataset
from .digits import digits_dataset
from .errors import DataError
from .folders import SKIP_OPTION, CheckedImageFolder, CorruptPolicy, ImageNetV2Folder
from .procedural import procedural_dataset
from .spec import DataSource, parse_data

SPLITS = ("train", "val")


@dataclass(frozen=True)
class BuiltinOptions:
    """How the built-in datasets are rendered (unused by the on-disk ones, which are always RGB).

    Attributes:
        size: Side in pixels.
        channels: 3 (RGB) or 1 (grey).
        procedural_train_size, procedural_val_size, procedural_seed: The procedural splits.
    """

    size: int = 32
    channels: int = 3
    procedural_train_size: int = 10_000
    procedural_val_size: int = 2_000
    procedural_seed: int = 0


def dataset_channels(source: DataSource, builtin: BuiltinOptions = BuiltinOptions()) -> int:
    """Channels of the images ``source`` produces (a model's ``in_chans`` must equal it)."""
    return builtin.channels if source.builtin else 3


def build_image_dataset(
    source: DataSource | str,
    split: str,
    transform: Callable | None = None,
    *,
    builtin: BuiltinOptions = BuiltinOptions(),
    on_corrupt: CorruptPolicy = "error",
    skip_option: str = SKIP_OPTION,
) -> Dataset:
    """The ``train`` or ``val`` split of ``source``; every dataset returned has a ``classes`` list.

    Args:
        source: A ``DataSource`` or a spec string of the data grammar.
        split: ``train`` or ``val``.
        transform: Applied to each PIL image.
        builtin: Rendering of ``digits`` and ``procedural``.
        on_corrupt: ``error`` (default), ``replace`` or ``mark`` for unreadable image files (folder kinds).
        skip_option: How the command turns skipping on, quoted in the error for an unreadable file.

    Raises:
        DataError: Missing or malformed data on disk, or a split the dataset does not have.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(source, str):
        source = parse_data(source)
    if split not in source.splits:
        raise DataError(f"{source} is a test set only: use it for evaluation (the val split), never for training")
    if source.kind == "digits":
        return digits_dataset(split, size=builtin.size, channels=builtin.channels, transform=transform)
    if source.kind == "procedural":
        return procedural_dataset(
            split,
            train_size=builtin.procedural_train_size,
            val_size=builtin.procedural_val_size,
            size=builtin.size,
            seed=builtin.procedural_seed,
            channels=builtin.channels,
            transform=transform,
        )
    if source.kind in ("cifar10", "cifar100"):
        return cifar_dataset(source.kind, source.root, split, transform)
    root = Path(source.root)
    if source.kind == "imagenetv2":
        hint = f"{root}/<class index 0..999>/<image>"
        return ImageNetV2Folder(root, transform, on_corrupt=on_corrupt, layout_hint=hint, skip_option=skip_option)
    layout = f"{root}/train/<class>/<image> and {root}/val/<class>/<image>"
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (expected the layout {layout})")
    if not (root / split).is_dir() and any(p.is_dir() for p in root.iterdir()):
        raise DataError(
            f"{root} has no {split}/ folder (expected the layout {layout}); if {root} itself holds the class "
            f"folders, put them under {root}/{split}/"
        )
    return CheckedImageFolder(
        root / split, transform, on_corrupt=on_corrupt, layout_hint=layout, skip_option=skip_option
    )


def check_num_classes(expected: int, dataset: Dataset, what: str = "the recipe") -> None:
    """Raise when ``expected`` (from the recipe or the model) differs from the number of classes in the data."""
    found = len(dataset.classes)
    if expected != found:
        where = getattr(dataset, "root", None)
        raise DataError(
            f"{what} says {expected} classes but the data has {found}"
            f"{f' (class folders in {where})' if isinstance(where, str) and Path(where).is_dir() else ''}; "
            f"set it to {found}, or fix the data"
        )


def check_same_classes(train: Dataset, val: Dataset) -> None:
    """Train and val must list the same classes in the same order, or class indices silently disagree."""
    if list(train.classes) == list(val.classes):
        return
    only_train = sorted(set(train.classes) - set(val.classes))
    only_val = sorted(set(val.classes) - set(train.classes))
    detail = f"only in train: {only_train[:5]}; only in val: {only_val[:5]}" if only_train or only_val else "order"
    raise DataError(
        f"train has {len(train.classes)} classes and val {len(val.classes)}, and they differ ({detail}); every "
        "class folder must exist in both splits, or the class indices of the two splits disagree"
    )
