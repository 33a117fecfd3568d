"""Every recipe in recipes/vision loads into VisionRecipe, and the paper recipes carry the paper's values.

Placeholders (the folder in ``data.dataset``, ``distill.teacher_weights``, ``model.checkpoint``) need not exist:
loading a recipe checks keys and types only. Sources: Touvron et al., arXiv 2105.03404 §3.1; deit#106 (ImageNet),
deit#117 (CIFAR).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainkit import load_recipe
from vision.recipe import VisionRecipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "vision"
ALL = sorted(RECIPES.glob("*.yaml"))
PAPER = {"resmlp_s12": 0.05, "resmlp_s24": 0.1, "resmlp_s36": 0.15, "resmlp_b24_8": 0.1}  # name -> drop path
BUILTIN = ["resmlp_digits", "resmlp_procedural"]


def load(name: str) -> VisionRecipe:
    return load_recipe(VisionRecipe, RECIPES / f"{name}.yaml")


def test_the_expected_recipes_exist():
    names = {path.stem for path in ALL}
    expected = {*PAPER, *(f"{n}_dist" for n in PAPER), "resmlp_cifar_finetune"}
    expected |= {*BUILTIN, *(f"{n}_dist" for n in BUILTIN)}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_every_recipe_loads_and_every_key_has_a_comment(path):
    recipe = load_recipe(VisionRecipe, path)
    assert isinstance(recipe, VisionRecipe)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"^\s+\w+:\s*\S", line):  # a key with a value (section headers have none)
            assert "#" in line, f"{path.name}:{number} has no comment: {line.strip()}"


@pytest.mark.parametrize("name", PAPER)
@pytest.mark.parametrize("distilled", [False, True])
def test_imagenet_recipes_follow_the_paper(name, distilled):
    r = load(f"{name}_dist" if distilled else name)
    assert r.model.name == name and r.model.drop_path_rate == PAPER[name]
    assert (r.data.source.kind, r.data.num_classes) == ("folder", 1000)  # imagenet:ROOT
    assert (r.optim.name, r.optim.lr, r.optim.lr_reference_batch, r.optim.weight_decay) == ("lamb", 5e-3, 512, 0.2)
    # The paper's total batch on 8 GPUs (recipes/accelerate/gpu8.yaml), hence a peak lr of 2e-2.
    total = r.run.batch_size * 8 * r.run.grad_accum_steps
    assert total == 2048 and r.optim.scaled_lr(total) == pytest.approx(2e-2)
    assert (r.schedule.epochs, r.schedule.warmup_epochs, r.run.precision) == (400, 5, "no")
    a = r.augment
    assert (a.rand_augment, a.mixup, a.cutmix, a.random_erasing) == ("rand-m9-mstd0.5-inc1", 0.8, 1.0, 0.25)
    assert (a.label_smoothing, a.repeated_aug, a.hflip, a.crop_scale) == (0.1, 3, 0.5, (0.08, 1.0))
    assert (r.eval.crop_ratio, r.eval.interpolation) == (0.9, "bicubic")
    if distilled:
        d = r.distill
        assert (d.kind, d.teacher, d.teacher_source, d.alpha) == ("hard", "regnety_160", "timm", 0.5)
    else:
        assert r.distill.kind == "none"


def test_cifar_finetune_follows_deit_117():
    r = load("resmlp_cifar_finetune")
    assert r.model.checkpoint and r.model.fresh_head and r.model.drop_path_rate == 0.05
    assert r.data.source.kind == "cifar10" and r.data.num_classes == 10
    assert (r.optim.name, r.optim.lr, r.optim.weight_decay) == ("adamw", 5e-6, 0.05)
    assert r.run.batch_size * 8 == 768 and r.run.precision == "no"
    assert (r.schedule.epochs, r.schedule.warmup_epochs, r.schedule.warmup_lr) == (1000, 5, 1e-6)
    assert r.augment.repeated_aug == 3 and r.augment.mixup == 0.8 and r.augment.cutmix == 1.0


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipes_and_their_distilled_versions_differ_only_by_the_teacher(name):
    plain, dist = load(name), load(f"{name}_dist")
    assert plain.data.dataset == name.removeprefix("resmlp_") and plain.distill.kind == "none"
    assert dist.distill.kind == "hard" and dist.distill.teacher_source == "timm"
    assert dist.distill.teacher_weights.startswith("outputs/teachers/")  # written by bench/train_teacher.py
    for section in ("model", "data", "augment", "eval", "optim", "schedule", "run"):
        assert getattr(plain, section) == getattr(dist, section), section
