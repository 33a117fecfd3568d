"""``build_dataset``: one split of the configured dataset, checked against the recipe's class count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from ..config import DataConfig
from .cifar import cifar_dataset
from .digits import digits_dataset
from .errors import DataError
from .folders import CheckedImageFolder, ImageNetV2Folder
from .procedural import procedural_dataset

SPLITS = ("train", "val")


def dataset_channels(data: DataConfig) -> int:
    """Channels of the images ``data`` produces (the model's ``in_chans`` must equal it)."""
    return data.builtin_channels if data.dataset in ("digits", "procedural") else 3


def _folder_split(data: DataConfig, split: str, transform: Callable | None) -> CheckedImageFolder:
    root = Path(data.root)
    layout = f"{root}/train/<class>/<image> and {root}/val/<class>/<image>"
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (expected the layout {layout})")
    # Unreadable files: training serves a neighbour instead, evaluation marks them so metrics leave them out.
    policy = ("replace" if split == "train" else "mark") if data.skip_corrupt_images else "error"
    return CheckedImageFolder(root / split, transform, on_corrupt=policy, layout_hint=layout)


def _imagenetv2(data: DataConfig, split: str, transform: Callable | None) -> ImageNetV2Folder:
    if split != "val":
        raise DataError("ImageNet-V2 is a test set only: use it for evaluation (the val split), never training")
    policy = "mark" if data.skip_corrupt_images else "error"
    hint = f"{data.root}/<class index 0..999>/<image>"
    return ImageNetV2Folder(data.root, transform, on_corrupt=policy, layout_hint=hint)


def build_dataset(data: DataConfig, split: str, transform: Callable | None = None) -> Dataset:
    """The ``train`` or ``val`` split of ``data.dataset``; every dataset returned has a ``classes`` list.

    Raises:
        DataError: missing or malformed data on disk, or a ``data.num_classes`` that disagrees with the data.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    name = data.dataset
    if name == "digits":
        dataset = digits_dataset(split, size=data.builtin_size, channels=data.builtin_channels, transform=transform)
    elif name == "procedural":
        dataset = procedural_dataset(
            split,
            train_size=data.procedural_train_size,
            val_size=data.procedural_val_size,
            size=data.builtin_size,
            seed=data.procedural_seed,
            channels=data.builtin_channels,
            transform=transform,
        )
    elif name in ("cifar10", "cifar100"):
        dataset = cifar_dataset(name, data.root, split, transform)
    elif name == "folder":
        dataset = _folder_split(data, split, transform)
    else:
        dataset = _imagenetv2(data, split, transform)
    if data.num_classes is not None:
        check_num_classes(data.num_classes, dataset, f"data.num_classes ({name}, {split})")
    return dataset


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


def parse_data_spec(spec: str, **builtin: int) -> DataConfig:
    """A ``DataConfig`` from a command-line spec: ``digits``, ``procedural``, ``cifar10:ROOT``, ``cifar100:ROOT``,
    ``imagenet:ROOT`` (or ``folder:ROOT``; reads ``ROOT/val``) or ``imagenetv2:ROOT``.

    ``builtin`` sets the ``builtin_*`` / ``procedural_*`` fields of ``DataConfig`` for the built-in datasets.
    """
    name, _, root = spec.partition(":")
    name = {"imagenet": "folder"}.get(name, name)
    choices = "digits, procedural, cifar10:ROOT, cifar100:ROOT, imagenet:ROOT, imagenetv2:ROOT"
    if name in ("digits", "procedural"):
        if root:
            raise DataError(f"--data {spec}: the built-in {name} dataset takes no folder; use --data {name}")
        return DataConfig(dataset=name, **builtin)
    if name in ("cifar10", "cifar100", "folder", "imagenetv2"):
        if not root:
            raise DataError(f"--data {spec}: give the folder as {name}:ROOT")
        return DataConfig(dataset=name, root=root)
    raise DataError(f"--data {spec}: unknown dataset {name!r}; choose one of {choices}")
