"""An image dataset held in memory as one uint8 array: the storage behind the built-in datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class InMemoryImages(Dataset):
    """Images in a ``(N, H, W, C)`` uint8 array with integer labels, served as PIL images to ``transform``.

    Serving PIL images lets the built-in datasets share timm's train and eval pipelines with the folder datasets.

    Args:
        images: ``(N, H, W, 1)`` or ``(N, H, W, 3)`` uint8 pixels.
        targets: ``N`` class indices.
        classes: Class names; ``targets`` index into it.
        transform: Applied to each PIL image; None returns the PIL image.
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        classes: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be a (N, H, W, 1 or 3) uint8 array, got {images.dtype} {images.shape}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        pixels = self.images[index]
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)  # 2-D uint8 -> mode "L"
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]
