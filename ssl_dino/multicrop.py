"""DINO's multi-crop augmentation (facebookresearch/dino ``DataAugmentationDINO``), parameterised by image size.

Two global views (random resized crop of scale 0.4-1, bicubic; flip; colour jitter 0.4/0.4/0.2/0.1 with p 0.8;
grayscale p 0.2; Gaussian blur p 1.0 on the first and p 0.1 on the second, which is also solarised with p 0.2) and
N local views (scale 0.05-0.4, blur p 0.5). Blur radii are in pixels of a 224 px crop in the reference (0.1-2.0);
here they scale with ``global_size / 224`` so 32 px images get the same relative blur.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_REFERENCE_SIZE = 224  # the crop size the reference blur radii were chosen for


class RandomGaussianBlur:
    """PIL Gaussian blur with probability ``p`` and a radius drawn uniformly in ``[radius_min, radius_max]``."""

    def __init__(self, p: float, radius_min: float, radius_max: float) -> None:
        self.p = p
        self.radius_min = radius_min
        self.radius_max = radius_max

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, radius=({self.radius_min:g}, {self.radius_max:g}))"


class MultiCropAugmentation:
    """Turn one PIL image into ``[global_1, global_2, local_1, ..., local_N]`` normalised tensors.

    Args:
        global_size: Side of the global crops (224 in DINO).
        local_size: Side at which local crops are cut (96 in DINO).
        num_local_crops: N (8 in DINO; 0 disables multi-crop).
        global_scale: Area range of the global crops (0.4-1; DINO advises 0.14-1 without local crops).
        local_scale: Area range of the local crops (0.05-0.4).
        local_output_size: Side the local crops are resized to after cutting; default ``local_size``. The
            ``resize`` crop policy sets it to ``global_size`` so a fixed-size backbone can take them.
        mean, std: Normalisation (ImageNet's by default).
        blur_radius: Blur radius range in output pixels; default (0.1, 2.0) scaled by ``global_size / 224``.
    """

    def __init__(
        self,
        *,
        global_size: int = 224,
        local_size: int = 96,
        num_local_crops: int = 8,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        local_output_size: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        blur_radius: tuple[float, float] | None = None,
    ) -> None:
        for name, scale in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0.0 < scale[0] <= scale[1] <= 1.0:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {scale}")
        if global_size <= 0 or local_size <= 0 or num_local_crops < 0:
            raise ValueError(
                f"need positive sizes and num_local_crops >= 0, got global_size={global_size}, "
                f"local_size={local_size}, num_local_crops={num_local_crops}"
            )
        self.global_size = global_size
        self.local_size = local_size
        self.local_output_size = local_output_size or local_size
        self.num_local_crops = num_local_crops
        if blur_radius is None:
            factor = global_size / _REFERENCE_SIZE
            blur_radius = (0.1 * factor, 2.0 * factor)
        bicubic = T.InterpolationMode.BICUBIC
        flip_and_color = T.Compose(
            [
                T.RandomHorizontalFlip(p=0.5),
                T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
            ]
        )
        normalize = T.Compose([T.ToTensor(), T.Normalize(mean, std)])

        def blur(p: float) -> RandomGaussianBlur:
            return RandomGaussianBlur(p, *blur_radius)

        self.global_1 = T.Compose(
            [
                T.RandomResizedCrop(global_size, scale=global_scale, interpolation=bicubic),
                flip_and_color,
                blur(1.0),
                normalize,
            ]
        )
        self.global_2 = T.Compose(
            [
                T.RandomResizedCrop(global_size, scale=global_scale, interpolation=bicubic),
                flip_and_color,
                blur(0.1),
                T.RandomSolarize(threshold=128, p=0.2),
                normalize,
            ]
        )
        local_steps: list = [T.RandomResizedCrop(local_size, scale=local_scale, interpolation=bicubic)]
        if self.local_output_size != local_size:
            # Cut at the small size first, so the view keeps the information content of a DINO local crop.
            local_steps.append(T.Resize(self.local_output_size, interpolation=bicubic))
        self.local = T.Compose([*local_steps, flip_and_color, blur(0.5), normalize])

    @property
    def num_crops(self) -> int:
        """Views per image: 2 global plus the local ones."""
        return 2 + self.num_local_crops

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        image = image.convert("RGB")
        crops = [self.global_1(image), self.global_2(image)]
        crops += [self.local(image) for _ in range(self.num_local_crops)]
        return crops

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(global={self.global_size}px x2, local={self.local_size}px"
            f"{'->' + str(self.local_output_size) + 'px' if self.local_output_size != self.local_size else ''}"
            f" x{self.num_local_crops})"
        )
