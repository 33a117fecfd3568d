"""Mixup / CutMix with label smoothing through ``timm.data.Mixup`` (targets become soft, smoothed distributions).

Pair it with a loss that takes soft targets (``vision.losses.SupervisedLoss`` does). timm's Mixup asserts an even
batch size, which is why the training loader drops its last incomplete batch.
"""

from __future__ import annotations

from timm.data import Mixup

from ..config import AugmentConfig


def build_mixup(augment: AugmentConfig, num_classes: int) -> Mixup | None:
    """A ``Mixup`` for the recipe, or None when Mixup and CutMix are both off (targets stay class indices)."""
    if not augment.mixup_active:
        return None
    return Mixup(
        mixup_alpha=augment.mixup,
        cutmix_alpha=augment.cutmix,
        prob=augment.mixup_prob,
        switch_prob=augment.mixup_switch_prob,
        mode=augment.mixup_mode,
        label_smoothing=augment.label_smoothing,
        num_classes=num_classes,
    )


def check_even_batch(augment: AugmentConfig, batch_size: int) -> None:
    """Mixup/CutMix pair each image with the one mirrored in the batch, so the batch size must be even."""
    if augment.mixup_active and batch_size % 2:
        raise ValueError(
            f"batch size {batch_size} is odd, but Mixup/CutMix needs an even batch per process; use "
            f"{batch_size + 1} or {batch_size - 1}, or set augment.mixup=0 and augment.cutmix=0"
        )
