"""Datasets for DINO pretraining and k-NN / linear evaluation, named in the data grammar shared with vision.

``data.dataset`` and ``--data`` take the same specs as ``vision.train`` and ``vision.evaluate`` (``trainkit.data``):
``digits`` and ``procedural`` (built in, rendered as RGB at the model's size), ``folder:ROOT`` / ``imagenet:ROOT``
(``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``), ``cifar10:ROOT``, ``cifar100:ROOT``. Pretraining reads the
``train`` split without its labels; the k-NN monitor and the evaluation commands use ``train`` as the labelled bank
and ``val`` as the queries. ``digits`` has the same fixed split as vision's (1,438 train / 359 val), so numbers
compare.

An unreadable image stops the command with one line naming the file, unless skipping is on
(``data.skip_corrupt_images`` in a recipe, ``--skip-corrupt-images`` on the evaluation commands): pretraining then
serves the next readable image, evaluation leaves the file out (label -1, dropped from the features) and counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from trainkit.data import SKIP_OPTION, BuiltinOptions, build_image_dataset, parse_data

from .multicrop import IMAGENET_MEAN, IMAGENET_STD

SPLITS = ("train", "val")


def eval_transform(
    img_size: int,
    *,
    crop_ratio: float = 0.875,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """DINO's k-NN transform: resize to ``img_size / crop_ratio`` (bicubic), centre crop ``img_size``, normalise.

    ``crop_ratio`` 0.875 is DINO's (256 -> 224); ResMLP's supervised evaluation uses 0.9; 1.0 keeps the whole image
    (right for the built-in digits, which fill their frame).
    """
    if not 0.0 < crop_ratio <= 1.0:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    resize = int(round(img_size / crop_ratio))
    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(img_size),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def build_dataset(
    data: str,
    split: str,
    transform: Callable[[Image.Image], Any] | None,
    *,
    img_size: int = 32,
    skip_corrupt_images: bool = False,
    evaluation: bool = False,
    skip_option: str = SKIP_OPTION,
    where: str = "data.dataset",
) -> Dataset:
    """Split ``split`` of the data-grammar spec ``data``; built-in images are RGB at ``img_size`` px.

    With ``skip_corrupt_images`` unreadable files are skipped: pretraining serves a neighbour instead, evaluation
    (``evaluation=True``, both splits) marks them with label -1, which ``extract_features`` drops. ``skip_option``
    is how the command at hand turns skipping on (quoted in the error), ``where`` the option that gave ``data``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    policy = ("mark" if evaluation else "replace") if skip_corrupt_images else "error"
    return build_image_dataset(
        parse_data(data, where=where),
        split,
        transform,
        builtin=BuiltinOptions(size=img_size, channels=3),
        on_corrupt=policy,
        skip_option=skip_option,
    )


def num_classes_of(dataset: Dataset) -> int:
    """Number of classes of a dataset built by ``build_dataset``."""
    return len(getattr(dataset, "dataset", dataset).classes)
