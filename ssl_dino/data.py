"""Datasets for DINO pretraining and k-NN / linear evaluation: built-in ``digits`` and ImageNet-style folders.

``digits`` is scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, nothing downloaded),
upscaled bicubically to the model's size, with the same fixed stratified split as ``vision``'s built-in digits
(seed 0, 20% of each class held out: 1,438 train / 359 val) so numbers compare. The split logic duplicates
``vision.data.digits`` because task packages never import each other.

A folder dataset is ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (torchvision ``ImageFolder``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision import transforms as T

from .multicrop import IMAGENET_MEAN, IMAGENET_STD

SPLITS = ("train", "val")


class DigitsDataset(Dataset):
    """The ``train`` or ``val`` split of the built-in digits as RGB PIL images of ``size`` px, through ``transform``."""

    def __init__(self, split: str, *, size: int = 32, transform: Callable[[Image.Image], Any] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"digits has the splits {SPLITS}, got {split!r}")
        pixels, labels = _digits_pixels(size)
        index = _digits_split()[split]
        self.pixels = pixels[index]
        self.targets = labels[index].tolist()
        self.classes = [str(d) for d in range(10)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.pixels[index]).convert("RGB")
        return (self.transform(image) if self.transform else image), self.targets[index]


@functools.lru_cache(maxsize=4)
def _digits_pixels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """All digits as (N, size, size) uint8, bicubic-upscaled from 8x8 (clamped: bicubic overshoots)."""
    from sklearn.datasets import load_digits  # scikit-learn is only needed for this dataset

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    large = F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
    return (large[:, 0] * 255.0).round_().to(torch.uint8).numpy(), bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _digits_split() -> dict[str, np.ndarray]:
    """Per class a permutation seeded with 0; the first 20% (rounded) are held out. Same as vision's digits."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.default_rng(0)
    train, val = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        held_out = round(len(members) * 0.2)
        val.append(members[:held_out])
        train.append(members[held_out:])
    return {"train": np.sort(np.concatenate(train)), "val": np.sort(np.concatenate(val))}


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


def build_dataset(data: str, split: str, transform: Callable[[Image.Image], Any], *, img_size: int = 32) -> Dataset:
    """``data`` is ``digits`` or the root of an ImageNet-style folder (``ROOT/train``, ``ROOT/val``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data == "digits":
        return DigitsDataset(split, size=img_size, transform=transform)
    folder = Path(data) / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data {data!r} is neither 'digits' nor a folder with {split}/ inside ({folder} does not exist); pass "
            "'digits' or a root holding train/<class>/... and val/<class>/..."
        )
    return datasets.ImageFolder(str(folder), transform=transform)


def num_classes_of(dataset: Dataset) -> int:
    """Number of classes of a dataset built by ``build_dataset``."""
    return len(dataset.classes)
