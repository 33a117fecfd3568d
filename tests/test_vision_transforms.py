"""Train/eval transforms through timm, normalisation defaults and Mixup/CutMix batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize

from vision.config import AugmentConfig, DataConfig
from vision.data import build_eval_transform, build_mixup, build_train_transform, check_even_batch, normalization
from vision.data.transforms import eval_resize_size

GREY = ((0.449,), (0.226,))


def test_eval_resize_is_int_size_over_crop_ratio() -> None:
    assert eval_resize_size(224, 0.9) == 248  # the paper's 224 -> 248 -> 224
    assert eval_resize_size(32, 0.9) == 35
    assert eval_resize_size(32, 0.875) == 36


@pytest.mark.parametrize(("size", "ratio", "resized"), [(32, 0.9, 35), (224, 0.9, 248), (16, 1.0, 16)])
def test_eval_transform_resizes_short_side_bicubic_then_centre_crops(size: int, ratio: float, resized: int) -> None:
    mean, std = normalization(None, 3)
    transform = build_eval_transform(img_size=size, crop_ratio=ratio, mean=mean, std=std)
    steps = transform.transforms
    resize = next(t for t in steps if isinstance(t, Resize))
    crop = next(t for t in steps if isinstance(t, CenterCrop))
    assert resize.size in (resized, [resized]) and resize.interpolation == InterpolationMode.BICUBIC
    assert tuple(crop.size) == (size, size)
    assert steps.index(resize) < steps.index(crop)
    wide = Image.new("RGB", (3 * size, 2 * size))
    assert transform(wide).shape == (3, size, size)


def test_eval_transform_output_matches_manual_resize_and_crop() -> None:
    image = Image.frombytes("RGB", (50, 40), bytes(range(256)) * 23 + bytes(range(232)))
    transform = build_eval_transform(img_size=32, crop_ratio=0.9, mean=(0, 0, 0), std=(1, 1, 1))
    # Short side 40 -> int(32 / 0.9) = 35; the long side keeps the aspect ratio: int(35 * 50 / 40) = 43.
    resized = image.resize((43, 35), Image.BICUBIC)
    left, top = round((43 - 32) / 2), round((35 - 32) / 2)
    crop = np.asarray(resized.crop((left, top, left + 32, top + 32)), dtype=np.float32)
    expected = torch.from_numpy(crop).permute(2, 0, 1) / 255.0
    assert torch.allclose(transform(image), expected, atol=2 / 255)


def test_train_transform_contains_the_deit_pieces_and_each_turns_off() -> None:
    mean, std = normalization(None, 3)
    full = repr(build_train_transform(AugmentConfig(), img_size=32, mean=mean, std=std))
    for piece in ("RandomResizedCropAndInterpolation", "interpolation=bicubic", "RandAugment", "RandomErasing"):
        assert piece in full
    plain = AugmentConfig(
        rand_augment="", random_erasing=0.0, hflip=0.0, color_jitter=0.0, crop_scale=(1.0, 1.0), crop_aspect=(1.0, 1.0)
    )
    minimal = build_train_transform(plain, img_size=32, mean=mean, std=std)
    text = repr(minimal)
    for piece in ("RandAugment", "RandomErasing", "RandomHorizontalFlip", "ColorJitter"):
        assert piece not in text
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    out = minimal(image)  # scale (1, 1) and aspect (1, 1): the whole image, only normalised
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out[:, 0, 0], (torch.tensor([10, 200, 30]) / 255 - torch.tensor(mean)) / torch.tensor(std))


def test_train_transform_handles_one_channel_images() -> None:
    transform = build_train_transform(AugmentConfig(), img_size=16, mean=GREY[0], std=GREY[1])
    out = transform(Image.new("L", (32, 32), 100))
    assert out.shape == (1, 16, 16)


def test_normalization_defaults_and_recipe_values() -> None:
    assert normalization(None, 3)[0] == pytest.approx((0.485, 0.456, 0.406))
    grey_mean, grey_std = normalization(None, 1)
    assert grey_mean == pytest.approx(GREY[0], abs=1e-3) and grey_std == pytest.approx(GREY[1], abs=1e-3)
    custom = DataConfig(mean=(0.5,), std=(0.25,))
    assert normalization(custom, 1) == ((0.5,), (0.25,))
    with pytest.raises(ValueError, match="1 values but the images have 3 channels"):
        normalization(custom, 3)


def test_mixup_gives_soft_smoothed_targets_of_batch_shape() -> None:
    torch.manual_seed(0)
    mixup = build_mixup(AugmentConfig(), num_classes=10)
    images, targets = torch.randn(8, 3, 16, 16), torch.arange(8)
    mixed, soft = mixup(images, targets)
    assert mixed.shape == images.shape and soft.shape == (8, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))
    assert soft.min() >= 0.1 / 10 - 1e-6  # label smoothing 0.1 spreads 0.01 to every class
    assert build_mixup(AugmentConfig(mixup=0.0, cutmix=0.0), num_classes=10) is None


def test_mixup_needs_an_even_batch() -> None:
    with pytest.raises(ValueError, match="batch size 7 is odd"):
        check_even_batch(AugmentConfig(), 7)
    check_even_batch(AugmentConfig(mixup=0.0, cutmix=0.0), 7)  # no mixing, any batch size


def test_augment_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="rand_augment"):
        AugmentConfig(rand_augment="m9")
    with pytest.raises(ValueError, match="repeated_aug"):
        AugmentConfig(repeated_aug=0)


def test_randaugment_posterize_to_zero_bits_gives_black_instead_of_crashing() -> None:
    # Magnitude 10 without noise makes timm ask Pillow to keep 0 bits, which Pillow >= 12 refuses.
    mean, std = normalization(None, 3)
    transform = build_train_transform(AugmentConfig(rand_augment="rand-m10-mstd0-inc1"), img_size=8, mean=mean, std=std)
    rand_augment = next(t for t in transform.transforms if type(t).__name__ == "RandAugment")
    posterize = next(op for op in rand_augment.ops if op.name == "PosterizeIncreasing")
    posterize.prob = 1.0
    for mode, colour in (("RGB", (200, 100, 50)), ("L", 180)):
        out = posterize(Image.new(mode, (8, 8), colour))
        assert out.mode == mode and np.asarray(out).max() == 0
