"""Every preset is a timm model: the contract timm's own tools rely on, point by point."""

import pytest
import timm
import timm.optim
import torch
from timm.data import create_transform, resolve_data_config
from timm.models import FeatureInfo
from timm.models._features import feature_take_indices
from torchvision import transforms

import resmlp
from resmlp import create_model
from resmlp.intermediates import take_indices


def test_presets_are_timm_models_under_our_names():
    ours = set(resmlp.list_models())
    assert ours <= set(timm.list_models("resmlp_*"))
    assert "resmlp_12_224" in timm.list_models("resmlp_*")  # timm's own ResMLP is untouched
    model = timm.create_model("resmlp_s12")
    assert isinstance(model, resmlp.ResMLP) and model.config == resmlp.get_config("resmlp_s12")
    front_door = create_model("resmlp_s12")
    assert type(front_door) is type(model)
    assert {k: v for k, v in front_door.pretrained_cfg.items() if k in model.pretrained_cfg} == {
        k: v for k, v in model.pretrained_cfg.items() if k in front_door.pretrained_cfg
    }


def test_s12_evaluation_transform_is_the_papers():
    for model in (timm.create_model("resmlp_s12"), create_model("resmlp_s12")):
        cfg = resolve_data_config({}, model=model)
        assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.9 and cfg["interpolation"] == "bicubic"
        steps = create_transform(**cfg).transforms
        assert isinstance(steps[0], transforms.Resize) and steps[0].size == 248
        assert steps[0].interpolation == transforms.InterpolationMode.BICUBIC
        assert isinstance(steps[1], transforms.CenterCrop) and tuple(steps[1].size) == (224, 224)


@pytest.mark.parametrize("name,size", [("resmlp_tiny", 16), ("resmlp_mini", 32), ("resmlp_s12_32", 32)])
def test_small_presets_resolve_to_their_own_input_size(name, size):
    cfg = resolve_data_config({}, model=timm.create_model(name))
    assert cfg["input_size"] == (3, size, size) and cfg["crop_pct"] == 1.0


def test_create_model_keywords_mean_what_they_mean_in_timm():
    model = timm.create_model("resmlp_mini", drop_rate=0.3, num_classes=4, pretrained_cfg_overlay=dict(crop_pct=0.5))
    assert model.head_drop.p == 0.3 and model.head.out_features == 4
    assert all(isinstance(b.channel_mix.op.drop, torch.nn.Identity) for b in model.blocks)  # head dropout only
    assert model.pretrained_cfg["crop_pct"] == 0.5
    assert timm.create_model("resmlp_mini", proj_drop_rate=0.2).blocks[0].channel_mix.op.drop.p == 0.2
    typed = timm.create_model("resmlp_mini", dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in typed.parameters()} == {torch.bfloat16}
    on_meta = timm.create_model("resmlp_s12", device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    tokens = timm.create_model("resmlp_mini", global_pool="", num_classes=0).eval()
    assert tokens(torch.randn(2, 3, 32, 32)).shape == (2, 64, 128)


def test_head_hidden_size_pre_logits_and_reset_classifier():
    model = timm.create_model("resmlp_mini").eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.num_features == model.head_hidden_size == 128
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 128)
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == (2, 128)
    model.reset_classifier(5, global_pool="")
    assert model(x).shape == (2, 64, 5) and model.config.global_pool == ""
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(5, global_pool="max")


def test_reset_classifier_keeps_dtype_and_device():
    model = create_model("resmlp_mini").to(torch.bfloat16)
    model.reset_classifier(3)
    assert model.head.weight.dtype == torch.bfloat16 and model.head.weight.device.type == "cpu"
    with torch.device("meta"):
        on_meta = create_model("resmlp_tiny")
    on_meta.reset_classifier(2)
    assert on_meta.head.weight.device.type == "meta"


@pytest.mark.parametrize("indices", [None, 2, [0, -1], (1, 3)])
def test_block_indices_follow_timm(indices):
    assert take_indices(6, indices) == feature_take_indices(6, indices)


@pytest.mark.parametrize("indices", [0, 7, [6], [-7]])
def test_out_of_range_indices_are_refused(indices):
    model = create_model("resmlp_mini")
    with pytest.raises(ValueError, match="range|last"):
        model.forward_intermediates(torch.randn(1, 3, 32, 32), indices=indices)


def test_forward_intermediates_semantics():
    model = create_model("resmlp_mini").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = [model.patch_embed(x)]
        for block in model.blocks:
            tokens.append(block(tokens[-1]))
        final, maps = model.forward_intermediates(x)
        assert len(maps) == 6 and all(m.shape == (2, 128, 8, 8) for m in maps)
        # NCHW lays the tokens out on the patch grid, row-major, as the patch embedding numbers them.
        torch.testing.assert_close(maps[2], tokens[3].reshape(2, 8, 8, 128).permute(0, 3, 1, 2))
        torch.testing.assert_close(final, model.forward_features(x), rtol=1e-4, atol=1e-5)
        nlc = model.forward_intermediates(x, indices=[1, -1], output_fmt="NLC", intermediates_only=True)
        torch.testing.assert_close(nlc[0], tokens[2])
        torch.testing.assert_close(nlc[1], tokens[6])
        last_two = model.forward_intermediates(x, indices=2, norm=True, output_fmt="NLC", intermediates_only=True)
        torch.testing.assert_close(last_two[1], model.norm(tokens[6]))
        early, (only,) = model.forward_intermediates(x, indices=[1], stop_early=True, output_fmt="NLC")
        torch.testing.assert_close(early, model.norm(tokens[2]))
        with pytest.raises(ValueError, match="output_fmt"):
            model.forward_intermediates(x, output_fmt="NHWC")


def test_prune_intermediate_layers_and_feature_info():
    model = create_model("resmlp_mini")
    assert [f["module"] for f in model.feature_info] == [f"blocks.{i}" for i in range(6)]
    info = FeatureInfo(model.feature_info, [1, 3, 5])
    assert info.channels() == [128] * 3 and info.reduction() == [4] * 3
    kept = model.prune_intermediate_layers([1, 3])
    assert kept == [1, 3] and len(model.blocks) == 4 and len(model.feature_info) == 4
    assert isinstance(model.head, torch.nn.Identity) and model.global_pool == ""
    outs = model.forward_intermediates(torch.randn(1, 3, 32, 32), indices=kept, intermediates_only=True)
    assert [o.shape for o in outs] == [(1, 128, 8, 8)] * 2


def test_features_only_and_out_indices():
    features = timm.create_model("resmlp_mini", features_only=True)
    assert features.feature_info.channels() == [128] * 3 and features.feature_info.reduction() == [4] * 3
    assert [o.shape for o in features(torch.randn(2, 3, 32, 32))] == [(2, 128, 8, 8)] * 3
    picked = timm.create_model("resmlp_s12_32", features_only=True, out_indices=(2, 5, 11))
    outs = picked(torch.randn(1, 3, 32, 32))
    assert len(outs) == 3 and all(o.shape == (1, 384, 8, 8) for o in outs)


def test_grad_checkpointing_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = create_model("resmlp_mini").train()
    x = torch.randn(3, 3, 32, 32)
    model(x).square().mean().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing()
    assert model.grad_checkpointing and not resmlp.fast.serves(model, x)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_layer_decay_gives_one_group_per_block():
    model = create_model("resmlp_mini")
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    scales = {round(g["lr_scale"], 8) for g in optimizer.param_groups}
    assert len(scales) == 6 + 2  # stem, one per block, final norm + head


def test_no_weight_decay_covers_affine_layerscale_and_biases():
    model = create_model("resmlp_mini")
    skipped = model.no_weight_decay()
    assert "norm.alpha" in skipped and "blocks.0.token_mix.ls.gamma" in skipped and "head.bias" in skipped
    assert "blocks.0.token_mix.op.weight" not in skipped
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert all(id(p) not in decayed for n, p in model.named_parameters() if n in skipped)
