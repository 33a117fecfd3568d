"""The model, its presets and the timm backbone contract."""

import pytest
import torch

import resmlp
from resmlp import ResMLP, create_model, get_config, list_models
from resmlp.flops import PAPER_STATS, model_stats

PRESETS = ["resmlp_s12", "resmlp_s24", "resmlp_s36", "resmlp_b24", "resmlp_b24_8"]
TINY = ["resmlp_tiny", "resmlp_mini"]


def test_presets_are_registered():
    names = list_models()
    for name in PRESETS + TINY:
        assert name in names


@pytest.mark.parametrize("name", PRESETS)
def test_preset_has_papers_params_and_macs(name):
    params, macs = model_stats(name)
    paper_params, paper_gmacs = PAPER_STATS[name]
    assert round(params / 1e6, 1) == pytest.approx(paper_params, abs=0.051), params
    assert round(macs / 1e9, 1) == pytest.approx(paper_gmacs, abs=0.051), macs


@pytest.mark.parametrize(
    "name,ls", [("resmlp_s12", 0.1), ("resmlp_s24", 1e-5), ("resmlp_s36", 1e-6), ("resmlp_b24_8", 1e-6)]
)
def test_preset_layerscale_init(name, ls):
    cfg = get_config(name)
    assert cfg.layerscale_init_value == ls
    with torch.device("meta"):
        model = ResMLP(cfg)
    assert model.blocks[0].token_mix.ls.init_value == ls
    assert model.blocks[-1].channel_mix.ls.init_value == ls


def test_official_init():
    torch.manual_seed(0)
    model = create_model("resmlp_mini")
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            assert torch.all(module.bias == 0)
            assert module.weight.std().item() == pytest.approx(0.02, rel=0.15)
            assert module.weight.abs().max() <= 2.0
    mix = model.blocks[0].token_mix.op
    assert torch.all(mix.bias == 0) and mix.weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert torch.all(model.blocks[0].token_mix.norm.alpha == 1) and torch.all(model.norm.beta == 0)
    torch.testing.assert_close(model.blocks[1].channel_mix.ls.gamma, torch.full((128,), 0.1))


def test_drop_path_uniform_by_default():
    model = create_model("resmlp_tiny", drop_path_rate=0.05)
    assert [b.token_mix.drop_path.drop_prob for b in model.blocks] == [0.05, 0.05]
    model = create_model("resmlp_tiny", drop_path_rate=0.1, drop_path_schedule="linear")
    assert [b.token_mix.drop_path.drop_prob for b in model.blocks] == pytest.approx([0.0, 0.1])


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward_grad_on_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, drop_path_rate=0.1)
    cfg = model.config
    x = torch.randn(4, cfg.in_chans, *cfg.image_hw)
    out = model(x)
    assert out.shape == (4, cfg.num_classes)
    out.logsumexp(dim=1).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_backbone_contract():
    model = create_model("resmlp_tiny").eval()
    x = torch.randn(2, 3, 16, 16)
    feats = model.forward_features(x)
    assert feats.shape == (2, 16, 32)
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))
    torch.testing.assert_close(model.get_classifier()(pooled), model(x))
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.config.num_classes == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, 32)


def test_non_square_images_channels_and_patch():
    model = create_model("resmlp_tiny", img_size=(8, 24), in_chans=1, patch_size=4, num_classes=3)
    assert model.config.num_patches == 12
    assert model(torch.randn(2, 1, 8, 24)).shape == (2, 3)


def test_wrong_image_size_names_expected_size():
    model = create_model("resmlp_tiny")
    with pytest.raises(ValueError, match="16x16"):
        model(torch.randn(1, 3, 32, 32))


def test_config_validation_errors():
    with pytest.raises(ValueError, match="not divisible by patch_size 16"):
        get_config("resmlp_s12", img_size=225)
    with pytest.raises(KeyError, match="resmlp_s12"):
        get_config("resmlp_s13")
    with pytest.raises(TypeError, match="depht"):
        get_config("resmlp_s12", depht=3)
    with pytest.raises(ValueError, match="embed_dim"):
        get_config("resmlp_s12", embed_dim=0)


def test_config_round_trip():
    cfg = get_config("resmlp_tiny", img_size=(8, 16))
    assert resmlp.ResMLPConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="widht"):
        resmlp.ResMLPConfig.from_dict({"widht": 3})


def test_runs_under_bf16_autocast_and_compile():
    model = create_model("resmlp_tiny").eval()
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-5)
