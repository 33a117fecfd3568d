"""``build_dataset``: one split of the recipe's dataset (``data.dataset`` in the data grammar), checked against the
recipe's class count. The datasets themselves and the grammar live in ``trainkit.data``, shared with DINO."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import Dataset

from trainkit.data import BuiltinOptions, build_image_dataset, check_num_classes, check_same_classes, parse_data
from trainkit.data import dataset_channels as _source_channels

from ..config import DataConfig

SPLITS = ("train", "val")
__all__ = ["build_dataset", "builtin_options", "check_num_classes", "check_same_classes", "dataset_channels"]


def builtin_options(data: DataConfig) -> BuiltinOptions:
    """How ``data`` renders the built-in datasets."""
    return BuiltinOptions(
        size=data.builtin_size,
        channels=data.builtin_channels,
        procedural_train_size=data.procedural_train_size,
        procedural_val_size=data.procedural_val_size,
        procedural_seed=data.procedural_seed,
    )


def dataset_channels(data: DataConfig) -> int:
    """Channels of the images ``data`` produces (the model's ``in_chans`` must equal it)."""
    return _source_channels(data.source, builtin_options(data))


def build_dataset(
    data: DataConfig, split: str, transform: Callable | None = None, *, skip_option: str | None = None
) -> Dataset:
    """The ``train`` or ``val`` split of ``data.dataset``; every dataset returned has a ``classes`` list.

    With ``data.skip_corrupt_images`` unreadable files are skipped: training serves a neighbour instead, evaluation
    marks them (target -1) so metrics leave them out. ``skip_option`` is how the command at hand turns that on
    (quoted in the error for an unreadable file; default: the recipe key).

    Raises:
        DataError: missing or malformed data on disk, or a ``data.num_classes`` that disagrees with the data.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    policy = ("replace" if split == "train" else "mark") if data.skip_corrupt_images else "error"
    extra = {"skip_option": skip_option} if skip_option else {}
    dataset = build_image_dataset(
        data.source, split, transform, builtin=builtin_options(data), on_corrupt=policy, **extra
    )
    if data.num_classes is not None:
        check_num_classes(data.num_classes, dataset, f"data.num_classes ({data.dataset}, {split})")
    return dataset


def parse_data_spec(spec: str, **fields) -> DataConfig:
    """A ``DataConfig`` for the data-grammar ``spec`` (``--data`` of ``vision.evaluate``), other fields from
    ``fields`` (``builtin_size=16`` ...)."""
    parse_data(spec)  # a DataSpecError names the option, before DataConfig wraps it in a ValueError
    return DataConfig(dataset=spec, **fields)
