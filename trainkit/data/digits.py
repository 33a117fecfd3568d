"""Built-in ``digits``: scikit-learn's bundled 8x8 handwritten digits, upscaled, with a fixed held-out split.

1,797 images of 10 classes (the UCI optical-recognition test set that ships with scikit-learn, so nothing is
downloaded). The split is fixed once and for all (stratified, 20% of every class held out: 1,438 train / 359 val)
so that numbers from different runs and machines compare.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .arrays import InMemoryImages

DIGIT_CLASSES = [str(d) for d in range(10)]
HELD_OUT_FRACTION = 0.2
SPLIT_SIZES = {"train": 1438, "val": 359}
_SPLIT_SEED = 0  # fixed on purpose: the split is part of the dataset's definition, not of a run


@functools.lru_cache(maxsize=8)
def _digits_arrays(size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as ``(N, size, size, channels)`` uint8 plus labels (computed once per size)."""
    from sklearn.datasets import load_digits  # local: scikit-learn is only needed for this dataset

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    # Bicubic upsampling gives smooth strokes; it overshoots slightly, hence the clamp.
    large = F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
    pixels = (large * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, size, size, 1)
    if channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    pixels.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return pixels, labels


@functools.lru_cache(maxsize=1)
def digits_split_indices() -> dict[str, np.ndarray]:
    """The fixed ``train`` / ``val`` indices: per class, a seeded permutation with 20% held out."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.default_rng(_SPLIT_SEED)
    train, val = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        held_out = round(len(members) * HELD_OUT_FRACTION)
        val.append(members[:held_out])
        train.append(members[held_out:])
    return {"train": np.sort(np.concatenate(train)), "val": np.sort(np.concatenate(val))}


def digits_dataset(split: str, *, size: int = 32, channels: int = 3, transform=None) -> InMemoryImages:
    """The ``train`` or ``val`` split of the built-in digits, rendered at ``size`` pixels with 1 or 3 channels."""
    if split not in ("train", "val"):
        raise ValueError(f"digits has the splits 'train' and 'val', got {split!r}")
    if channels not in (1, 3):
        raise ValueError(f"digits renders 1 or 3 channels, got {channels}")
    pixels, labels = _digits_arrays(size, channels)
    index = digits_split_indices()[split]
    return InMemoryImages(pixels[index], labels[index], DIGIT_CLASSES, transform)
