"""Recipes: YAML and command-line overrides onto typed frozen dataclass trees (trainkit.recipe)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from trainkit.recipe import RecipeError, flatten, load_recipe, parse_command_line, save_resolved_config
from trainkit.sections import OptimConfig, RunConfig, ScheduleConfig
from trainkit.yaml12 import yaml_load


@dataclass(frozen=True)
class DataSection:
    name: Literal["digits", "cifar10"] = "digits"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    classes: list[int] = field(default_factory=lambda: [0, 1])
    root: Path | None = None


@dataclass(frozen=True)
class Recipe:
    data: DataSection = DataSection()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    run: RunConfig = RunConfig()
    teacher: DataSection | None = None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_then_yaml_then_command_line(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 1e-3  # per 512 images\n  weight_decay: 0.05\nrun:\n  seed: 7\n")
    recipe = load_recipe(Recipe, path, ["optim.lr=2e-4", "run.batch_size=16"])
    assert recipe.optim.lr == 2e-4  # command line beats YAML
    assert recipe.optim.weight_decay == 0.05  # YAML beats the default
    assert recipe.run.seed == 7 and recipe.run.batch_size == 16
    assert recipe.optim.name == "lamb" and recipe.schedule.epochs == 400  # untouched defaults


def test_a_preset_instance_is_the_base(tmp_path):
    preset = Recipe(schedule=ScheduleConfig(epochs=10, warmup_epochs=1))
    recipe = load_recipe(preset, write(tmp_path, "schedule:\n  min_lr: 0.0\n"))
    assert (recipe.schedule.epochs, recipe.schedule.min_lr) == (10, 0.0)


def test_unknown_key_names_the_dotted_key_and_the_close_match(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown key 'optim\.weight_decy'.*did you mean 'optim\.weight_decay'"):
        load_recipe(Recipe, write(tmp_path, "optim:\n  weight_decy: 0.1\n"))
    with pytest.raises(RecipeError, match=r"command line: unknown key 'shedule'.*did you mean 'schedule'"):
        load_recipe(Recipe, None, ["shedule.epochs=3"])


def test_wrong_types_are_errors_naming_key_and_source(tmp_path):
    path = write(tmp_path, "run:\n  batch_size: 12.5\n")
    with pytest.raises(RecipeError, match=rf"{path}: run\.batch_size: expected an integer, got 12\.5"):
        load_recipe(Recipe, path)
    with pytest.raises(RecipeError, match=r"run\.tensorboard: expected true or false"):
        load_recipe(Recipe, None, ["run.tensorboard=1"])
    with pytest.raises(RecipeError, match=r"optim\.lr: expected a number"):
        load_recipe(Recipe, None, ["optim.lr=fast"])
    with pytest.raises(RecipeError, match=r"'cifar' is not one of \['digits', 'cifar10'\]; did you mean 'cifar10'"):
        load_recipe(Recipe, None, ["data.name=cifar"])
    with pytest.raises(RecipeError, match=r"optim\.betas: expected a list of 2 items"):
        load_recipe(Recipe, None, ["optim.betas=[0.9]"])
    with pytest.raises(RecipeError, match=r"data\.classes: item 1: expected an integer"):
        load_recipe(Recipe, None, ["data.classes=[1, two]"])
    with pytest.raises(RecipeError, match=r"optim: expected a mapping"):
        load_recipe(Recipe, write(tmp_path, "optim: adamw\n"))


def test_validation_of_a_section_is_reported_with_its_name():
    with pytest.raises(RecipeError, match=r"command line: optim: lr must be > 0"):
        load_recipe(Recipe, None, ["optim.lr=-1"])


def test_ints_become_floats_lists_become_tuples_and_optional_accepts_null(tmp_path):
    recipe = load_recipe(Recipe, write(tmp_path, "optim:\n  lr: 1\n  clip_grad: 3\ndata:\n  mean: [0, 0.5, 1]\n"))
    assert isinstance(recipe.optim.lr, float) and recipe.optim.clip_grad == 3.0
    assert recipe.data.mean == (0.0, 0.5, 1.0) and isinstance(recipe.data.mean, tuple)
    recipe = load_recipe(recipe, None, ["optim.clip_grad=null", "data.root=/data/x", "run.max_steps=5"])
    assert recipe.optim.clip_grad is None and recipe.data.root == Path("/data/x") and recipe.run.max_steps == 5


def test_optional_nested_section_is_built_from_its_defaults():
    recipe = load_recipe(Recipe, None, ["teacher.name=cifar10"])
    assert recipe.teacher == DataSection(name="cifar10")
    assert load_recipe(recipe, None, ["teacher=null"]).teacher is None


def test_yaml_12_scalars_keep_off_as_text_and_read_exponents_as_floats(tmp_path):
    recipe = load_recipe(Recipe, write(tmp_path, "run:\n  resume: off\noptim:\n  lr: 5e-3\n"))
    assert recipe.run.resume == "off" and recipe.optim.lr == 5e-3
    expected = {"a": "yes", "b": 8, "c": float("inf"), "d": "2021-05-03"}
    assert yaml_load("a: yes\nb: 08\nc: .inf\nd: 2021-05-03") == expected


def test_command_line_flags_and_default_output_dir(tmp_path):
    path = write(tmp_path, "run:\n  seed: 3\n")
    cli = parse_command_line(Recipe, ["--recipe", str(path), "optim.name=adamw", "run.resume=/ckpt/step_1"])
    assert cli.output_dir == Path("outputs/recipe") and cli.recipe.optim.name == "adamw"
    assert cli.recipe.run.resume == "/ckpt/step_1" and cli.recipe.run.seed == 3
    cli = parse_command_line(Recipe, ["--output-dir", str(tmp_path / "o"), "--recipe", str(path)])
    assert cli.output_dir == tmp_path / "o"
    with pytest.raises(RecipeError, match="not of the form section.key=value"):
        parse_command_line(Recipe, ["optim.lr"])
    with pytest.raises(RecipeError, match="does not exist"):
        parse_command_line(Recipe, ["--recipe", str(tmp_path / "missing.yaml")])


def test_resolved_config_round_trips(tmp_path):
    recipe = load_recipe(Recipe, None, ["optim.clip_grad=1.5", "teacher.mean=[0.1, 0.2, 0.3]", "run.resume=off"])
    path = save_resolved_config(recipe, tmp_path / "run")
    assert path == tmp_path / "run" / "config.yaml" and path.read_text().startswith("#")
    assert load_recipe(Recipe, path) == recipe


def test_flatten_gives_scalars_only_for_tensorboard():
    flat = flatten(Recipe())
    assert flat["optim.lr"] == 5e-3 and flat["optim.clip_grad"] == "null" and flat["optim.betas"] == "[0.9, 0.999]"
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
    assert flat["teacher"] == "null" and flat["data.mean"] == "[0.5, 0.5, 0.5]"
    sections = (DataSection, OptimConfig, ScheduleConfig, RunConfig)
    assert len(flat) == sum(len(dataclasses.fields(s)) for s in sections) + 1  # + "teacher": "null"
