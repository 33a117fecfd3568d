"""The data grammar (trainkit.data.spec): one spelling for every recipe and command, refusals that show the fix."""

from __future__ import annotations

import pytest

from trainkit.data import DataSource, DataSpecError, build_image_dataset, parse_data
from trainkit.recipe import RecipeError, load_recipe


@pytest.mark.parametrize(
    ("spec", "kind", "root"),
    [
        ("digits", "digits", ""),
        ("procedural", "procedural", ""),
        ("folder:/data/x", "folder", "/data/x"),
        ("imagenet:/data/in1k", "folder", "/data/in1k"),
        ("imagenetv2:/data/v2", "imagenetv2", "/data/v2"),
        ("cifar10:/data/c", "cifar10", "/data/c"),
        ("cifar100:/data/c", "cifar100", "/data/c"),
        ("folder:C:/data", "folder", "C:/data"),  # only the first colon separates the kind
    ],
)
def test_specs_of_the_grammar(spec, kind, root):
    source = parse_data(spec)
    assert (source.kind, source.root, str(source)) == (kind, root, spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "/data/imagenet",
            r"--data=/data/imagenet: a folder is written with its kind, e\.g\. --data=folder:/data/imagenet",
        ),
        ("./images", r"--data=folder:\./images"),
        ("digits:/x", r"the built-in digits dataset takes no folder; write --data=digits"),
        ("folder", r"give the folder, as --data=folder:ROOT"),
        ("imagenet:", r"give the folder, as --data=imagenet:ROOT"),
        ("digit", r"unknown dataset 'digit'; did you mean 'digits'\?; the data grammar is digits \| procedural"),
        ("mnist:/x", r"unknown dataset 'mnist'"),
    ],
)
def test_specs_outside_the_grammar_say_how_to_write_them(spec, message):
    with pytest.raises(DataSpecError, match=message) as err:
        parse_data(spec)
    assert err.value.status == 2  # a usage error


def test_the_recipes_of_both_tasks_use_the_grammar():
    from ssl_dino.recipe import DinoRecipe
    from vision.recipe import VisionRecipe

    for root in (VisionRecipe, DinoRecipe):
        assert load_recipe(root, None, ["data.dataset=imagenet:/d"]).data.dataset == "imagenet:/d"
        with pytest.raises(RecipeError, match=r"data\.dataset=/d: a folder is written with its kind"):
            load_recipe(root, None, ["data.dataset=/d"])


def test_imagenetv2_is_evaluation_only(tmp_path):
    with pytest.raises(Exception, match="test set only"):
        build_image_dataset(DataSource("imagenetv2", str(tmp_path)), "train")
