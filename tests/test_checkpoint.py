"""Checkpoint interop: official deit, DINO, timm and our own files; exports; safe loading; every bad input."""

import argparse
import importlib.util
import pathlib

import numpy as np
import pytest
import timm
import torch
from reference_deit_resmlp import RefResMLP, randomise_
from safetensors.torch import save_file
from timm.models.mlp_mixer import checkpoint_filter_fn

import resmlp
from resmlp import CheckpointError, create_model, save_model
from resmlp.checkpoint import allow_globals, convert, detect_layout, infer_config, read_checkpoint

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2}


class Evil:
    """A class no checkpoint should need: stands in for a pickle that runs arbitrary code."""


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# ---- fixtures: "official" files made here, since nothing is downloaded ----
@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A randomised deit-layout S12, its logits on a batch of 2, and the files deit would write."""
    torch.manual_seed(0)
    ref = randomise_(RefResMLP()).eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = ref(images)
    folder = tmp_path_factory.mktemp("official")
    state = ref.state_dict()
    torch.save(state, folder / "resmlp_12_no_dist.pth")
    args = argparse.Namespace(model="resmlp_12", lr=5e-3, drop_path=0.05)
    wrapped = {"model": state, "optimizer": {"state": {}}, "epoch": 399, "args": args, "max_acc": np.float64(0.77)}
    torch.save(wrapped, folder / "checkpoint.pth")
    return {"ref": ref, "state": state, "images": images, "logits": logits, "dir": folder}


@pytest.fixture(scope="module")
def ours_s12(official):
    return create_model("resmlp_s12", checkpoint=official["dir"] / "resmlp_12_no_dist.pth").eval()


@pytest.fixture()
def tiny_official(tmp_path):
    """A deit-layout tiny model with a 10-class head, saved raw."""
    ref = randomise_(RefResMLP(**TINY, num_classes=10), seed=3).eval()
    path = tmp_path / "tiny.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


# ---- parity and round trips ----
def test_official_raw_file_gives_the_deit_models_logits(official, ours_s12):
    assert ours_s12.config.num_classes == 1000
    with torch.no_grad():
        torch.testing.assert_close(ours_s12(official["images"]), official["logits"], rtol=1e-5, atol=1e-5)


def test_deit_training_checkpoint_with_args_loads_like_the_raw_file(official, ours_s12):
    model = create_model("resmlp_s12", checkpoint=official["dir"] / "checkpoint.pth")
    _assert_same_weights(model.state_dict(), ours_s12.state_dict())


def test_timm_parity_and_round_trip_official_ours_timm(official, ours_s12, tmp_path):
    # timm's own converter on the official dict, strict: timm computes the deit model's logits...
    timm_ref = timm.create_model("resmlp_12_224", pretrained=False).eval()
    timm_ref.load_state_dict(checkpoint_filter_fn(official["state"], timm_ref), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(timm_ref(official["images"]), official["logits"], rtol=1e-5, atol=1e-5)
    # ...our deit export is exactly the official dict, and our timm export is exactly what timm converts it to.
    save_model(ours_s12, tmp_path / "deit.pth", layout="deit")
    save_model(ours_s12, tmp_path / "timm.pth", layout="timm")
    deit_export = torch.load(tmp_path / "deit.pth", weights_only=True)
    timm_export = torch.load(tmp_path / "timm.pth", weights_only=True)
    _assert_same_weights(deit_export, official["state"])
    _assert_same_weights(timm_export, checkpoint_filter_fn(deit_export, timm_ref))
    timm_ref.load_state_dict(timm_export, strict=True)
    # timm -> ours (as a .pth and as safetensors) comes back bit for bit.
    save_file(timm_ref.state_dict(), str(tmp_path / "timm.safetensors"))
    for name in ("timm.pth", "timm.safetensors"):
        back = create_model("resmlp_s12", checkpoint=tmp_path / name)
        _assert_same_weights(back.state_dict(), ours_s12.state_dict())


def test_layout_conversions_are_exact_and_detected(tiny_official):
    ref, _ = tiny_official
    deit = ref.state_dict()
    ours = convert(deit, "deit", "resmlp")
    timm_sd = convert(ours, "resmlp", "timm")
    assert [detect_layout(sd) for sd in (deit, ours, timm_sd)] == ["deit", "resmlp", "timm"]
    assert timm_sd["blocks.1.norm2.alpha"].shape == (1, 1, 32) and ours["norm.beta"].shape == (32,)
    torch.testing.assert_close(ours["blocks.1.token_mix.ls.gamma"], deit["blocks.1.gamma_1"], rtol=0, atol=0)
    torch.testing.assert_close(ours["blocks.1.channel_mix.ls.gamma"], deit["blocks.1.gamma_2"], rtol=0, atol=0)
    _assert_same_weights(convert(convert(timm_sd, "timm", "deit"), "deit", "resmlp"), ours)
    with pytest.raises(ValueError, match="unknown layout 'keras'"):
        convert(ours, "resmlp", "keras")


def test_infer_config_reads_the_architecture_from_shapes(tiny_official):
    state, _ = read_checkpoint(tiny_official[1])
    expected = {"embed_dim": 32, "depth": 2, "patch_size": 4, "img_size": 16, "in_chans": 3, "num_classes": 10}
    assert infer_config(state) == {**expected, "mlp_ratio": 4.0}
    del state["blocks.0.token_mix.op.weight"]
    with pytest.raises(CheckpointError, match=r"cannot infer the architecture.*blocks\.0\.token_mix\.op\.weight"):
        infer_config(state)


# ---- DINO ----
@pytest.fixture()
def dino_file(tmp_path):
    teacher = randomise_(RefResMLP(**TINY, num_classes=0), seed=1).eval()
    student = randomise_(RefResMLP(**TINY, num_classes=0), seed=2).eval()

    def wrapped(backbone):  # MultiCropWrapper under DDP: module.backbone.* plus the DINO projection head
        out = {f"module.backbone.{k}": v for k, v in backbone.state_dict().items()}
        out["module.head.mlp.0.weight"] = torch.randn(64, 32)
        out["module.head.last_layer.weight_g"] = torch.ones(256, 1)
        return out

    checkpoint = {
        "student": wrapped(student),
        "teacher": wrapped(teacher),
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 3,
        "args": argparse.Namespace(arch="resmlp_12", out_dim=256),
        "dino_loss": {"center": torch.zeros(1, 256)},
    }
    torch.save(checkpoint, tmp_path / "dino.pth")
    return tmp_path / "dino.pth", teacher, student


def test_dino_teacher_loads_as_features_and_student_on_request(dino_file):
    path, teacher, student = dino_file
    images = torch.randn(2, 3, 16, 16)
    for key, ref in ((None, teacher), ("student", student)):
        model = create_model("resmlp_tiny", checkpoint=path, checkpoint_key=key).eval()
        assert model.config.num_classes == 0
        with torch.no_grad():
            torch.testing.assert_close(model(images), ref.forward_features(images), rtol=1e-5, atol=1e-5)


def test_dino_backbone_into_a_classifier_needs_fresh_head(dino_file):
    path = dino_file[0]
    with pytest.raises(CheckpointError, match="no classifier head.*fresh_head=True"):
        create_model("resmlp_tiny", checkpoint=path, num_classes=10)
    model = create_model("resmlp_tiny", checkpoint=path, num_classes=10, fresh_head=True)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)
    with pytest.raises(CheckpointError, match=r"no entry 'model_ema'.*'student', 'teacher'"):
        create_model("resmlp_tiny", checkpoint=path, checkpoint_key="model_ema")


# ---- our own format ----
def test_our_format_round_trip_keeps_a_non_default_config(tmp_path):
    overrides = {"img_size": (32, 48), "in_chans": 1, "num_classes": 5, "layerscale_init": 0.3, "mlp_ratio": 2.0}
    model = randomise_(create_model("resmlp_tiny", **overrides), seed=4).eval()
    save_model(torch.nn.DataParallel(model), tmp_path / "ours.pth")  # wrappers are looked through
    assert [p.name for p in tmp_path.iterdir()] == ["ours.pth"]  # the atomic write left no temporary file
    back = create_model("resmlp_tiny", checkpoint=tmp_path / "ours.pth", mlp_ratio=2.0).eval()
    assert back.config == model.config
    images = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(back(images), model(images), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"another architecture than 'resmlp_mini'.*embed_dim: 32 in the file"):
        create_model("resmlp_mini", checkpoint=tmp_path / "ours.pth")
    with pytest.raises(ValueError, match="unknown layout 'onnx'"):
        save_model(model, tmp_path / "x.onnx", layout="onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_hub_entry_points_cover_every_preset_and_load_checkpoints(tmp_path):
    spec = importlib.util.spec_from_file_location("resmlp_hubconf", REPO_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert hubconf.dependencies == ["torch"]
    assert all(callable(getattr(hubconf, name, None)) for name in resmlp.list_models())
    source = randomise_(create_model("resmlp_tiny"), seed=5)
    save_model(source, tmp_path / "tiny.pth")
    model = torch.hub.load(str(REPO_ROOT), "resmlp_tiny", source="local", checkpoint=tmp_path / "tiny.pth")
    assert isinstance(model, resmlp.ResMLP)
    _assert_same_weights(model.state_dict(), source.state_dict())
    assert torch.hub.load(str(REPO_ROOT), "resmlp_tiny", source="local", num_classes=3).config.num_classes == 3


# ---- bad input: one clear error each ----
def test_224_checkpoint_into_a_256_model_names_the_token_grids(official):
    with pytest.raises(CheckpointError, match=r"196 tokens \(a 14x14 grid.*256 tokens \(a 16x16 grid"):
        create_model("resmlp_s12", checkpoint=official["dir"] / "resmlp_12_no_dist.pth", img_size=256)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"depth": 3}, r"depth: the checkpoint has 2 blocks, the model 3"),
        ({"embed_dim": 48}, r"checkpoint has width 32.*the model has width 48[\s\S]*and \d+ more tensors"),
        ({"mlp_ratio": 2.0}, r"blocks\.\*\.channel_mix\.op\.fc1\.weight: checkpoint shape \(128, 32\) != .*\(64, 32\)"),
        ({"num_classes": 5}, r"head has 10 classes, the model's 5; pass num_classes=10.*fresh_head=True"),
    ],
)
def test_architecture_mismatches_are_named(tiny_official, overrides, message):
    with pytest.raises(CheckpointError, match=message):
        create_model("resmlp_tiny", checkpoint=tiny_official[1], **overrides)


def test_missing_and_unexpected_keys_are_listed(tiny_official, tmp_path):
    state = tiny_official[0].state_dict()
    del state["blocks.1.mlp.fc2.bias"]
    state["pos_embed"] = torch.zeros(1, 16, 32)
    torch.save(state, tmp_path / "broken.pth")
    pattern = r"missing keys \(1\): blocks\.1\.channel_mix\.op\.fc2\.bias[\s\S]*unexpected keys \(1\): pos_embed"
    with pytest.raises(CheckpointError, match=pattern):
        create_model("resmlp_tiny", checkpoint=tmp_path / "broken.pth")


def test_fresh_head_and_features_only_drop_the_checkpoint_head(tiny_official):
    ref, path = tiny_official
    backbone = {k: v for k, v in create_model("resmlp_tiny", checkpoint=path).state_dict().items() if "head" not in k}
    tuned = create_model("resmlp_tiny", checkpoint=path, num_classes=5, fresh_head=True)
    assert tuned.head.weight.shape == (5, 32) and torch.all(tuned.head.bias == 0)
    features = create_model("resmlp_tiny", checkpoint=path, num_classes=0).eval()
    for model in (tuned, features):
        _assert_same_weights({k: v for k, v in model.state_dict().items() if "head" not in k}, backbone)
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(features(images), ref.forward_features(images), rtol=1e-5, atol=1e-5)


def test_image_that_does_not_fit_the_patch_grid_names_the_expected_size(tiny_official):
    model = create_model("resmlp_tiny", checkpoint=tiny_official[1])
    with pytest.raises(ValueError, match="16x16"):
        model(torch.randn(1, 3, 20, 20))


@pytest.mark.parametrize(
    "content,message",
    [
        ({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}, "not a ResMLP state dict"),
        ({"epoch": 3, "args": argparse.Namespace(lr=0.1)}, r"no model weights found.*\['args', 'epoch'\]"),
    ],
)
def test_files_without_resmlp_weights_are_refused(tmp_path, content, message):
    torch.save(content, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=message):
        create_model("resmlp_tiny", checkpoint=tmp_path / "other.pth")


# ---- safe loading ----
def test_pickled_arbitrary_class_is_refused_until_explicitly_allowed(tmp_path, tiny_official, monkeypatch):
    torch.save({"model": tiny_official[0].state_dict(), "extra": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"pickles \S*Evil.*resmlp\.checkpoint\.allow_globals\(Evil\)") as err:
        create_model("resmlp_tiny", checkpoint=tmp_path / "evil.pth")
    assert "weights_only=False" not in str(err.value)  # never advertise the unsafe path
    # The opt-in is process-wide; restore the allow-list afterwards so other tests see the default one.
    allow_list_module = importlib.import_module("resmlp.checkpoint.safe_load")
    monkeypatch.setattr(allow_list_module, "_ALLOWED", list(allow_list_module._ALLOWED))
    allow_globals(Evil)
    assert create_model("resmlp_tiny", checkpoint=tmp_path / "evil.pth").config.num_classes == 10


def test_truncated_directory_and_missing_paths_give_clear_errors(tmp_path, tiny_official):
    data = tiny_official[1].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    for name in ("cut.pth", "cut.safetensors", "notes.pth"):
        with pytest.raises(CheckpointError, match=rf"cannot read .*{name}.*truncated"):
            create_model("resmlp_tiny", checkpoint=tmp_path / name)
    with pytest.raises(CheckpointError, match="is a directory"):
        create_model("resmlp_tiny", checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        create_model("resmlp_tiny", checkpoint=tmp_path / "nowhere.pth")
