"""Multi-crop augmentation, crop policies through MultiCropBackbone, derived token mixing, and the policy checks."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import resmlp
from ssl_dino.backbone import MultiCropBackbone, build_backbone, check_crop_policy
from ssl_dino.crop_policy import CROP_POLICIES, make_crop_policy
from ssl_dino.derived_mixing import derive_token_mixing, features_at_grid
from ssl_dino.head import DINOHead
from ssl_dino.multicrop import MultiCropAugmentation

SIZES = {"resmlp_tiny": (16, 8), "resmlp_mini": (32, 16)}  # global size, local size (whole 4-px patches)
RESMLP_POLICIES = ["none", "resize", "derived", "derived_subgrid"]


def random_image(size: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_multicrop_views_and_sizes():
    augment = MultiCropAugmentation(global_size=32, local_size=16, num_local_crops=3)
    crops = augment(random_image())
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert augment.num_crops == 5
    # Normalised: values go well beyond [0, 1].
    assert min(c.min().item() for c in crops) < 0


def test_multicrop_resize_policy_brings_local_crops_to_the_global_size():
    policy = make_crop_policy("resize", global_size=32, local_size=12, num_local_crops=2)
    crops = policy.augmentation()(random_image())
    assert [tuple(c.shape[-2:]) for c in crops] == [(32, 32)] * 4


def test_policy_defaults():
    none = make_crop_policy("none", global_size=224)
    assert (none.num_local_crops, none.global_scale) == (0, (0.14, 1.0))
    derived = make_crop_policy("derived", global_size=224)
    assert (derived.num_local_crops, derived.local_size, derived.global_scale) == (8, 96, (0.4, 1.0))
    # The default local size is in whole patches when asked (96/224 of 32 px is 13.7 -> 12, of 16 px 6.9 -> 8).
    assert make_crop_policy("derived", global_size=32).local_size == 14
    assert make_crop_policy("derived", global_size=32, size_multiple=4).local_size == 12
    assert make_crop_policy("derived", global_size=16, size_multiple=4).local_size == 8
    assert make_crop_policy("derived", global_size=8, size_multiple=16).local_size == 16
    with pytest.raises(ValueError, match="choose one of"):
        make_crop_policy("crop_everything", global_size=224)
    with pytest.raises(ValueError, match="no local crops"):
        make_crop_policy("none", global_size=224, num_local_crops=4)


@pytest.mark.parametrize("arch", sorted(SIZES))
@pytest.mark.parametrize("policy_name", RESMLP_POLICIES)
def test_each_policy_runs_the_resmlp_presets(arch, policy_name):
    global_size, local_size = SIZES[arch]
    policy = make_crop_policy(policy_name, global_size=global_size, local_size=local_size, num_local_crops=None)
    backbone = build_backbone(arch, img_size=global_size)
    model = MultiCropBackbone(backbone, DINOHead(backbone.num_features, 16, hidden_dim=8, bottleneck_dim=4), policy)
    batch = 2
    side = policy.local_input_size
    crops = [torch.randn(batch, 3, global_size, global_size) for _ in range(2)]
    crops += [torch.randn(batch, 3, side, side) for _ in range(policy.num_local_crops)]
    assert model(crops).shape == (policy.num_crops * batch, 16)
    # The teacher sees the global views only.
    assert model(crops[:2]).shape == (2 * batch, 16)


@pytest.mark.parametrize("policy_name", ["derived", "derived_subgrid"])
def test_derived_local_crops_train_the_global_token_mixing(policy_name):
    torch.manual_seed(0)
    policy = make_crop_policy(policy_name, global_size=16, local_size=8, num_local_crops=2)
    backbone = build_backbone("resmlp_tiny", img_size=16)
    model = MultiCropBackbone(backbone, nn.Identity(), policy)
    model([torch.randn(2, 3, 8, 8)]).pow(2).sum().backward()  # local crops only
    for block in backbone.blocks:
        assert block.token_mix.op.weight.grad.abs().sum() > 0
        assert block.token_mix.op.bias.grad.abs().sum() > 0


def test_functional_forward_equals_the_model_at_its_own_size():
    torch.manual_seed(0)
    model = resmlp.create_model("resmlp_mini", num_classes=0).eval()
    x = torch.randn(3, 3, 32, 32)
    expected = model.forward_head(model.forward_features(x), pre_logits=True)
    for mode in ("interpolate", "subgrid"):
        torch.testing.assert_close(features_at_grid(model, x, mode), expected, rtol=1e-5, atol=1e-6)


def test_interpolation_keeps_an_averaging_matrix_averaging():
    uniform = torch.full((36, 36), 1 / 36)
    weight, bias = derive_token_mixing(uniform, torch.ones(36), (6, 6), (3, 3), "interpolate")
    torch.testing.assert_close(weight, torch.full((9, 9), 1 / 9))
    torch.testing.assert_close(bias, torch.ones(9))


def test_subgrid_takes_the_centred_window():
    weight = torch.arange(16.0 * 16).reshape(16, 16)
    bias = torch.arange(16.0)
    local_weight, local_bias = derive_token_mixing(weight, bias, (4, 4), (2, 2), "subgrid")
    window = [5, 6, 9, 10]  # rows 1-2, columns 1-2 of the 4x4 grid, row-major
    torch.testing.assert_close(local_weight, weight[window][:, window])
    torch.testing.assert_close(local_bias, bias[window])


def test_derived_needs_whole_patches():
    backbone = build_backbone("resmlp_mini", img_size=32)
    policy = make_crop_policy("derived", global_size=32, local_size=14)
    with pytest.raises(ValueError, match="whole 4x4 patches.*12 or 16"):
        MultiCropBackbone(backbone, nn.Identity(), policy)


def test_global_size_must_match_the_backbone():
    backbone = build_backbone("resmlp_mini", img_size=32)
    with pytest.raises(ValueError, match="takes 32x32 images but the crop policy's global size is 64"):
        check_crop_policy(make_crop_policy("none", global_size=64), backbone)


def test_native_policy_is_refused_for_resmlp_and_points_to_derived():
    backbone = build_backbone("resmlp_tiny", img_size=16)
    with pytest.raises(ValueError, match="'derived' or 'derived_subgrid'"):
        check_crop_policy(make_crop_policy("native", global_size=16, local_size=8), backbone)


def test_timm_backbones_by_name_and_their_policies():
    vit = build_backbone("test_vit", img_size=32)  # fixed input size: built for 32 px
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, vit.num_features)
    for name in ("derived", "native"):
        with pytest.raises(ValueError, match="use 'resize' or 'none'"):
            check_crop_policy(make_crop_policy(name, global_size=32, local_size=16), vit)
    check_crop_policy(make_crop_policy("resize", global_size=32, local_size=16), vit)
    cnn = build_backbone("test_resnet", img_size=32)  # takes any size: plain DINO multi-crop
    policy = make_crop_policy("native", global_size=32, local_size=16, num_local_crops=2)
    model = MultiCropBackbone(cnn, nn.Identity(), policy)
    crops = [torch.randn(2, 3, 32, 32)] * 2 + [torch.randn(2, 3, 16, 16)] * 2
    assert model(crops).shape == (8, cnn.num_features)


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(KeyError, match="resmlp_mini, resmlp_s12.*timm model") as info:
        build_backbone("resmlp_s13", img_size=224)
    assert "Did you mean" in str(info.value)


def test_every_policy_is_tested():
    assert set(RESMLP_POLICIES) | {"native"} == set(CROP_POLICIES)
