"""Train and eval image transforms, built by timm as in DeiT, plus the normalisation statistics.

Training: random resized crop (bicubic), horizontal flip, RandAugment, then random erasing on the tensor
(``timm.data.create_transform(is_training=True)``). Each piece can be turned off in ``AugmentConfig`` for tiny or
orientation-sensitive images. Evaluation follows the paper: resize the short side to ``int(size / crop_ratio)``
with bicubic interpolation, then centre-crop ``size`` (crop ratio 0.9 for ResMLP, deit#113).
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageOps
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, auto_augment, create_transform
from timm.data.auto_augment import RandAugment

from ..config import AugmentConfig, DataConfig

ImageSize = int | tuple[int, int]


def normalization(data: DataConfig | None, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` for ``in_chans`` channels: the recipe's, else ImageNet's (averaged for one channel)."""
    if data is not None and data.mean is not None and data.std is not None:
        if len(data.mean) != in_chans:
            raise ValueError(f"data.mean has {len(data.mean)} values but the images have {in_chans} channels")
        return tuple(data.mean), tuple(data.std)
    if in_chans == 3:
        return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    if in_chans == 1:
        return (sum(IMAGENET_DEFAULT_MEAN) / 3,), (sum(IMAGENET_DEFAULT_STD) / 3,)
    raise ValueError(f"no default normalisation for {in_chans} channels; set data.mean and data.std")


def eval_resize_size(img_size: int, crop_ratio: float) -> int:
    """Short side after the eval resize: ``int(img_size / crop_ratio)`` (248 for 224 at ratio 0.9)."""
    return int(img_size / crop_ratio)


def build_train_transform(
    augment: AugmentConfig, *, img_size: ImageSize, mean: tuple[float, ...], std: tuple[float, ...]
) -> Callable:
    """DeiT's training pipeline through timm, with each augmentation switchable in ``augment``."""
    transform = create_transform(
        img_size,
        is_training=True,
        scale=tuple(augment.crop_scale),
        ratio=tuple(augment.crop_aspect),
        hflip=augment.hflip,
        color_jitter=augment.color_jitter or None,  # 0 would still add a (no-op) ColorJitter
        auto_augment=augment.rand_augment or None,
        interpolation=augment.interpolation,
        re_prob=augment.random_erasing,
        re_mode=augment.erasing_mode,
        re_count=1,
        mean=mean,
        std=std,
    )
    _allow_zero_bit_posterize(transform)
    return transform


def _posterize_keeping_zero_bits(image: Image.Image, bits_to_keep: int, **_) -> Image.Image:
    """timm's posterize, with 0 bits meaning a black image as under the Pillow versions DeiT used."""
    if bits_to_keep >= 8:
        return image
    if bits_to_keep <= 0:
        return image.point([0] * 256 * len(image.getbands()))
    return ImageOps.posterize(image, bits_to_keep)


def _allow_zero_bit_posterize(transform: Callable) -> None:
    """Make RandAugment's ``PosterizeIncreasing`` safe with Pillow >= 12.

    timm maps magnitude 10 to "keep 0 bits" (``rand-m9-mstd0.5`` draws it about 2% of the time); Pillow now raises
    "bits must be between or equal to 1 and 8" instead of returning a black image, which would crash a training
    run within its first epoch. Only the ops of this transform are changed, never timm's module.
    """
    for step in getattr(transform, "transforms", []):
        if isinstance(step, RandAugment):
            for op in step.ops:
                if op.aug_fn is auto_augment.posterize:
                    op.aug_fn = _posterize_keeping_zero_bits


def build_eval_transform(
    *,
    img_size: ImageSize,
    crop_ratio: float = 0.9,
    interpolation: str = "bicubic",
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Callable:
    """The paper's eval transform: resize the short side to ``int(size / crop_ratio)``, centre-crop ``size``.

    timm computes the resize as ``floor(size / crop_pct)``, the same integer as ``int`` for positive sizes.
    """
    if not 0 < crop_ratio <= 1:
        raise ValueError(f"crop_ratio must lie in (0, 1], got {crop_ratio}")
    return create_transform(
        img_size, is_training=False, crop_pct=crop_ratio, interpolation=interpolation, mean=mean, std=std
    )
