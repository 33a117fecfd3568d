"""The vision-specific recipe sections: data, augmentation, distillation and evaluation.

The defaults are the paper's ImageNet recipe (Touvron et al., arXiv 2105.03404, §3.1; hyperparameters from the
authors in deit#106, eval crop from deit#113) where one exists. A later step composes these frozen dataclasses
with ``trainkit.sections`` into the full vision recipe; YAML keys map 1:1 onto the fields below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from trainkit.data import DataSource, parse_data

DISTILL_KINDS = ("none", "hard", "soft")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Which images to train and evaluate on.

    Attributes:
        dataset: digits, procedural, folder:ROOT, imagenet:ROOT, cifar10:ROOT ... (the data grammar). The
            built-in ``digits`` and ``procedural``; ``folder:ROOT`` / ``imagenet:ROOT`` (``ROOT/train/<class>/*``
            and ``ROOT/val/<class>/*``); ``cifar10:ROOT`` / ``cifar100:ROOT`` (the python-version files under
            ``ROOT``); ``imagenetv2:ROOT`` (evaluation only). See docs/training.md, "Data".
        num_classes: Classes the recipe expects; null takes the count from the data. A disagreement is an error.
        builtin_size: Side in pixels at which the built-in datasets are rendered.
        builtin_channels: 3 (RGB) or 1 (grey) for the built-in datasets; the folder and CIFAR data are always RGB.
        procedural_train_size: Images in the procedural training split.
        procedural_val_size: Images in the procedural validation split.
        procedural_seed: Seed of the procedural generator; the same seed always gives the same images.
        skip_corrupt_images: Skip unreadable image files instead of stopping; they are counted and reported.
        mean: Per-channel normalisation mean; null uses ImageNet's (its average for 1-channel data).
        std: Per-channel normalisation std; null uses ImageNet's (its average for 1-channel data).
    """

    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "root": "the folder is part of data.dataset now, e.g. data.dataset=folder:/data/imagenet"
    }

    dataset: str = "digits"
    num_classes: int | None = None
    builtin_size: int = 32
    builtin_channels: Literal[1, 3] = 3
    procedural_train_size: int = 10_000
    procedural_val_size: int = 2_000
    procedural_seed: int = 0
    skip_corrupt_images: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        parse_data(self.dataset, where="data.dataset")
        if self.num_classes is not None and self.num_classes <= 0:
            raise ValueError(f"num_classes must be > 0 or null (from the data), got {self.num_classes}")
        if self.builtin_size < 8:
            raise ValueError(f"builtin_size must be >= 8 pixels, got {self.builtin_size}")
        if self.builtin_channels not in (1, 3):
            raise ValueError(f"builtin_channels must be 1 or 3, got {self.builtin_channels}")
        if self.procedural_train_size <= 0 or self.procedural_val_size <= 0:
            raise ValueError("procedural_train_size and procedural_val_size must be > 0")
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both data.mean and data.std, or neither (ImageNet statistics)")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std):
                raise ValueError(f"data.mean has {len(self.mean)} values but data.std {len(self.std)}")
            if any(s <= 0 for s in self.std):
                raise ValueError(f"data.std values must be > 0, got {self.std}")

    @property
    def source(self) -> DataSource:
        """``dataset`` parsed (``trainkit.data.parse_data``)."""
        return parse_data(self.dataset, where="data.dataset")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, built through timm (DeiT's pipeline).

    Attributes:
        crop_scale: Area range of the random resized crop; (1, 1) with ``crop_aspect`` (1, 1) keeps the whole image.
        crop_aspect: Aspect-ratio range of the random resized crop.
        hflip: Probability of a horizontal flip (set 0 for data whose classes a flip changes, such as digits).
        rand_augment: timm RandAugment string; empty disables it.
        color_jitter: Colour-jitter strength, used only when RandAugment is off (timm's rule); 0 disables it.
        interpolation: Resampling of the random resized crop.
        random_erasing: Probability of erasing one random rectangle; 0 disables it.
        erasing_mode: What fills the erased rectangle: ``pixel`` (per-pixel noise), ``rand`` or ``const``.
        mixup: Mixup Beta(alpha, alpha) parameter; 0 disables Mixup.
        cutmix: CutMix Beta(alpha, alpha) parameter; 0 disables CutMix.
        mixup_prob: Probability of applying Mixup or CutMix to a batch.
        mixup_switch_prob: Probability of CutMix rather than Mixup when both are enabled.
        mixup_mode: ``batch`` (one draw per batch), ``pair`` or ``elem``.
        label_smoothing: Label smoothing; folded into Mixup's soft targets when Mixup/CutMix is on.
        repeated_aug: Each image is shown this many times per pass, with independent augmentations (1: off).
        repeated_aug_epoch: ``dataset`` (an epoch has as many samples as the dataset, DeiT's choice, so repeated
            augmentation does not lengthen epochs) or ``repeated`` (every image ``repeated_aug`` times per epoch).
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)  # timm/torchvision default, used by DeiT
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rand_augment: str = "rand-m9-mstd0.5-inc1"  # deit#106
    color_jitter: float = 0.3  # DeiT's --color-jitter; ignored while RandAugment is on
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    random_erasing: float = 0.25  # deit#106
    erasing_mode: Literal["pixel", "rand", "const"] = "pixel"
    mixup: float = 0.8  # deit#106
    cutmix: float = 1.0  # deit#106
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    label_smoothing: float = 0.1  # deit#106
    repeated_aug: int = 3  # deit#106
    repeated_aug_epoch: Literal["dataset", "repeated"] = "dataset"

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_aspect[0] <= self.crop_aspect[1]:
            raise ValueError(f"crop_aspect must satisfy 0 < low <= high, got {self.crop_aspect}")
        for name in ("hflip", "random_erasing", "mixup_prob", "mixup_switch_prob"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("label_smoothing", self.label_smoothing, 0.0, 0.5)
        if self.mixup < 0 or self.cutmix < 0 or self.color_jitter < 0:
            raise ValueError("mixup, cutmix and color_jitter must be >= 0 (0 disables them)")
        if self.rand_augment and not self.rand_augment.startswith("rand-"):
            raise ValueError(
                f"rand_augment must be a timm RandAugment string such as 'rand-m9-mstd0.5-inc1' or empty, "
                f"got {self.rand_augment!r}"
            )
        if self.repeated_aug < 1:
            raise ValueError(f"repeated_aug must be >= 1 (1 turns repeated augmentation off), got {self.repeated_aug}")

    @property
    def mixup_active(self) -> bool:
        """Whether batches are mixed (then the targets are soft and the batch size must be even)."""
        return self.mixup_prob > 0 and (self.mixup > 0 or self.cutmix > 0)


@dataclass(frozen=True)
class DistillConfig:
    """DeiT-style knowledge distillation from a frozen teacher (the paper: hard, from RegNetY-16GF).

    Attributes:
        kind: ``none``, ``hard`` (cross-entropy to the teacher's argmax) or ``soft`` (KL at temperature ``tau``).
        teacher: Model name: a timm model (``regnety_160``) or a resmlp preset (``resmlp_s24``).
        teacher_weights: Local weights file of the teacher; nothing is downloaded.
        teacher_source: ``auto`` (a resmlp preset name means ours, anything else timm), ``timm`` or ``resmlp``.
        alpha: Weight of the distillation term; the supervised term gets 1 - alpha (DeiT's default 0.5).
        tau: Softmax temperature of soft distillation (DeiT's default 1.0; unused by hard distillation).
    """

    kind: Literal["none", "hard", "soft"] = "none"
    teacher: str = ""
    teacher_weights: str = ""
    teacher_source: Literal["auto", "timm", "resmlp"] = "auto"
    alpha: float = 0.5
    tau: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in DISTILL_KINDS:
            raise ValueError(f"kind must be one of {DISTILL_KINDS}, got {self.kind!r}")
        _check_range("alpha", self.alpha, 0.0, 1.0)
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if self.kind != "none" and not (self.teacher and self.teacher_weights):
            raise ValueError(
                f"distillation kind {self.kind!r} needs distill.teacher (a model name) and distill.teacher_weights "
                "(a local weights file); set kind: none to train without a teacher"
            )


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol of the paper: resize to int(size / crop_ratio), bicubic, centre crop.

    Attributes:
        crop_ratio: Fraction of the resized image kept by the centre crop (0.9 for ResMLP, deit#113; timm's
            ResMLP configs say 0.875).
        interpolation: Resampling of the resize.
        batch_size: Images per process per evaluation step; null uses 1.5 times the training batch (DeiT).
        real_labels: Path to ImageNet-ReaL's ``real.json`` to also report ReaL top-1 (ImageNet val only).
    """

    crop_ratio: float = 0.9
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    batch_size: int | None = None
    real_labels: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.crop_ratio <= 1:
            raise ValueError(f"crop_ratio must lie in (0, 1], got {self.crop_ratio}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0 or null, got {self.batch_size}")
