"""The paper's ablations as configuration: each variant is buildable, counted as in the paper, trainable, saved
and loaded, and works with the timm contract and the exporters where its structure allows."""

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import timm
import torch

import resmlp
from resmlp import create_model, fast
from resmlp.flops import PAPER_ABLATION_STATS, model_stats
from resmlp.viz import layer_sparsity

REPO = Path(__file__).resolve().parents[1]

PAPER = PAPER_ABLATION_STATS  # the paper's parameters (M) and GMACs at 224 px, 1000 classes

VARIANTS = [
    dict(token_mixer="mlp"),
    dict(token_mixer="conv3x3"),
    dict(token_mixer="dwconv3x3"),
    dict(token_mixer="separable"),
    dict(token_mixer="none"),
    dict(norm="layernorm"),
    dict(norm="batchnorm"),
    dict(act="relu"),
    dict(act="silu"),
    dict(act="hardswish"),
    dict(global_pool="class_mlp"),
]


def variant_id(overrides: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in overrides.items()) or "released"


@pytest.mark.parametrize("preset,overrides,params,gmacs", PAPER, ids=[f"{p}-{variant_id(o)}" for p, o, *_ in PAPER])
def test_counts_match_the_paper(preset, overrides, params, gmacs):
    counted_params, counted_macs = model_stats(resmlp.get_config(preset, **overrides))
    assert abs(counted_params / 1e6 - params) <= 0.01 * params
    assert abs(counted_macs / 1e9 - gmacs) <= 0.03 * gmacs


def test_unknown_choices_name_the_options():
    for field, value in (("token_mixer", "attention"), ("norm", "rmsnorm"), ("act", "tanh"), ("global_pool", "max")):
        with pytest.raises(ValueError, match=f"unknown {field} '{value}'; choose one of"):
            resmlp.get_config("resmlp_s12", **{field: value})


@pytest.mark.parametrize("overrides", VARIANTS, ids=variant_id)
def test_variant_trains_and_every_parameter_gets_a_gradient(overrides):
    torch.manual_seed(0)
    model = create_model("resmlp_tiny", **overrides).train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("overrides", VARIANTS, ids=variant_id)
def test_variant_exports_and_keeps_timms_feature_api(overrides):
    model = create_model("resmlp_mini", **overrides).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        for traced in (
            torch.jit.script(model),
            torch.fx.symbolic_trace(model),
            torch.export.export(model, (x,)).module(),
        ):
            torch.testing.assert_close(traced(x), expected, rtol=1e-4, atol=1e-4)
        maps = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [m.shape for m in maps] == [(2, 128, 8, 8)] * 2
    features = timm.create_model("resmlp_mini", features_only=True, **overrides)
    assert [o.shape for o in features(x)] == [(2, 128, 8, 8)] * 3


@pytest.mark.parametrize("overrides", VARIANTS, ids=variant_id)
def test_variant_saves_and_loads_through_our_format(overrides, tmp_path):
    model = create_model("resmlp_tiny", **overrides).eval()
    resmlp.save_model(model, tmp_path / "variant.pth")
    loaded = create_model("resmlp_tiny", checkpoint=tmp_path / "variant.pth").eval()
    assert loaded.config == model.config
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    for layout in ("timm", "deit"):
        with pytest.raises(ValueError, match=f"the {layout} layout holds only the released ResMLP architecture"):
            resmlp.save_model(model, tmp_path / f"{layout}.pth", layout=layout)


def test_fast_path_serves_only_what_its_algebra_covers():
    x = torch.randn(2, 3, 32, 32)
    for overrides in VARIANTS:
        model = create_model("resmlp_mini", **overrides).eval()
        # Class-MLP changes only the pooling: the trunk is the released one and keeps the fast path.
        assert fast.serves(model, x) == (overrides == dict(global_pool="class_mlp")), overrides
        with torch.no_grad():
            out = model(x)
            with fast.disabled():
                torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="average pooling"):
        resmlp.fuse(create_model("resmlp_mini", global_pool="class_mlp"))
    with pytest.raises(TypeError, match="token_mixer='mlp'"):
        resmlp.fuse(create_model("resmlp_mini", token_mixer="mlp"))


def test_class_mlp_pooling_reads_every_token_and_updates_only_the_class_token():
    model = create_model("resmlp_mini", global_pool="class_mlp").eval()
    tokens = torch.randn(2, 64, 128, requires_grad=True)
    pooled = model.forward_head(tokens, pre_logits=True)
    assert pooled.shape == (2, 128)
    pooled[0].sum().backward()
    assert (tokens.grad[0].abs().sum(dim=-1) > 0).all() and tokens.grad[1].abs().sum() == 0
    assert model.group_matcher()["blocks"][1][0] == r"^norm|^pool"  # layer decay puts it with the last group
    with pytest.raises(ValueError, match="no Class-MLP pooling"):
        create_model("resmlp_mini").reset_classifier(3, global_pool="class_mlp")


def test_viz_draws_variants_with_a_mixing_matrix_and_refuses_the_others():
    assert (
        len(layer_sparsity(create_model("resmlp_mini", norm="layernorm", global_pool="class_mlp"))["token_mixing"]) == 6
    )
    with pytest.raises(ValueError, match="token_mixer='conv3x3'.*no N x N token-mixing matrix"):
        layer_sparsity(create_model("resmlp_mini", token_mixer="conv3x3"))


def _run(module: str, recipe: Path, out: Path, *overrides: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    command = [sys.executable, "-m", module, "--recipe", str(recipe), "--output-dir", str(out), *overrides]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_variants_train_and_save_through_vision_train(tmp_path):
    _run(
        "vision.train", REPO / "recipes" / "vision" / "resmlp_digits.yaml", tmp_path / "v",
        "model.name=resmlp_tiny", "data.builtin_size=16", "schedule.epochs=1",
        "schedule.warmup_epochs=0", "run.batch_size=64",
        "model.token_mixer=separable", "model.norm=layernorm", "model.act=silu", "model.global_pool=class_mlp",
    )  # fmt: skip
    model = create_model("resmlp_tiny", checkpoint=tmp_path / "v" / "model.pth")
    config = model.config
    assert (config.token_mixer, config.norm, config.act, config.global_pool) == (
        "separable",
        "layernorm",
        "silu",
        "class_mlp",
    )


def test_variants_pretrain_through_ssl_dino_train(tmp_path):
    _run(
        "ssl_dino.train", REPO / "recipes" / "dino" / "resmlp_tiny_test.yaml", tmp_path / "d",
        "crops.policy=resize", "backbone.token_mixer=mlp", "backbone.norm=batchnorm", "run.max_steps=2",
        "monitor.every_epochs=0",
    )  # fmt: skip
    model = create_model("resmlp_tiny", checkpoint=tmp_path / "d" / "model.pth")
    assert (model.config.token_mixer, model.config.norm) == ("mlp", "batchnorm")


ABLATION_RECIPES = sorted((REPO / "recipes" / "vision" / "ablations").glob("*.yaml"))


@pytest.mark.parametrize("path", ABLATION_RECIPES, ids=lambda p: p.stem)
def test_each_ablation_recipe_changes_exactly_one_thing_of_the_papers_recipe(path):
    from trainkit import load_recipe
    from vision.recipe import VisionRecipe

    base = load_recipe(VisionRecipe, REPO / "recipes" / "vision" / "resmlp_s12.yaml")
    recipe = load_recipe(VisionRecipe, path)
    assert dataclasses.replace(recipe, model=base.model) == base  # every other section is the paper's
    fields = dataclasses.fields(base.model)
    changed = [f.name for f in fields if getattr(recipe.model, f.name) != getattr(base.model, f.name)]
    assert len(changed) == 1, changed
    with torch.device("meta"):
        create_model(recipe.model.name, **recipe.model.variant_overrides())  # the variant builds


def test_the_ablation_recipes_cover_every_row_of_the_papers_table():
    models = {p.stem for p in ABLATION_RECIPES}
    rows = {"norm_layernorm", "pool_class_mlp", "mixer_none", "mixer_mlp", "mixer_conv3x3", "mixer_dwconv3x3"}
    assert rows | {"mixer_separable", "patch14", "patch8"} <= models
