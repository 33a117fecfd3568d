"""The k-NN and linear-probe commands on the built-in digits with tiny checkpoints; feature dump and reload."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resmlp
from ssl_dino import knn, linear
from ssl_dino.data import eval_transform
from ssl_dino.features import load_features
from ssl_dino.linear import train_linear_probe
from trainkit.data import digits_dataset

DIGITS_TRAIN, DIGITS_VAL = 1438, 359


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """The commands create an Accelerator; reset its process-wide state so other tests start clean."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def dino_checkpoint(tmp_path_factory) -> Path:
    """A DINO-layout checkpoint of resmlp_tiny: teacher and student differ; prefixes and head keys as the reference."""
    torch.manual_seed(0)
    teacher, student = (
        resmlp.create_model("resmlp_tiny", num_classes=0),
        resmlp.create_model("resmlp_tiny", num_classes=0),
    )
    head = {"head.mlp.0.weight": torch.randn(8, 32), "head.last_layer.weight_g": torch.ones(4, 1)}
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pth"
    torch.save(
        {
            "teacher": {**{f"backbone.{k}": v for k, v in teacher.state_dict().items()}, **head},
            "student": {**{f"module.backbone.{k}": v for k, v in student.state_dict().items()}},
            "epoch": 3,
        },
        path,
    )
    return path


def teacher_features(path: Path, split: str) -> torch.Tensor:
    """The teacher's val features computed without the command: plain model, plain loop."""
    state = {
        k.removeprefix("backbone."): v for k, v in torch.load(path)["teacher"].items() if k.startswith("backbone.")
    }
    model = resmlp.create_model("resmlp_tiny", num_classes=0).eval()
    model.load_state_dict(state)
    dataset = digits_dataset(split, size=16, transform=eval_transform(16, crop_ratio=1.0))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        return model(images)


@pytest.fixture(scope="module")
def teacher_dump(dino_checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """Run the k-NN command once on the DINO checkpoint with --dump-features and --results; reused below."""
    from accelerate.state import AcceleratorState

    out = tmp_path_factory.mktemp("knn")
    args = ["--checkpoint", str(dino_checkpoint), "--data", "digits", "--nb-knn", "5", "20"]
    results = knn.main(args + ["--dump-features", str(out / "features"), "--results", str(out / "knn.json")])
    AcceleratorState._reset_state(reset_partial_state=True)
    return out, results


def test_knn_command_teacher_by_default_dump_and_reload(dino_checkpoint, teacher_dump, capsys):
    out, results = teacher_dump
    assert set(results) == {5, 20} and all(0 < top1 <= top5 <= 100 for top1, top5 in results.values())
    train_x, train_y, test_x, test_y, num_classes = load_features(out / "features")
    assert (train_x.shape, test_x.shape, num_classes) == ((DIGITS_TRAIN, 32), (DIGITS_VAL, 32), 10)
    torch.testing.assert_close(test_x, teacher_features(dino_checkpoint, "val"), rtol=1e-4, atol=1e-5)
    saved = json.loads((out / "knn.json").read_text())
    assert saved["k20"]["top1"] == pytest.approx(results[20][0])
    # Evaluated again from the dump, without the model: the same numbers.
    assert knn.main(["--load-features", str(out / "features"), "--nb-knn", "5", "20"]) == results
    assert f"20-NN classifier result: Top1: {results[20][0]:.2f}" in capsys.readouterr().out


def test_knn_command_student_on_request(dino_checkpoint, tmp_path):
    dump = tmp_path / "student"
    knn.main(
        ["--checkpoint", str(dino_checkpoint), "--checkpoint-key", "student", "--nb-knn", "20"]
        + ["--dump-features", str(dump)]
    )
    student_val = load_features(dump)[2]
    assert not torch.allclose(student_val, teacher_features(dino_checkpoint, "val"))


def test_knn_command_clips_k_to_the_bank(tmp_path, capsys):
    dump = tmp_path / "f"
    train_x, train_y = torch.randn(30, 8), torch.arange(30) % 3
    from ssl_dino.features import save_features

    save_features(dump, train_x, train_y, torch.randn(12, 8), torch.arange(12) % 3, num_classes=3)
    results = knn.main(["--load-features", str(dump), "--nb-knn", "10", "200"])
    assert "k=200 is larger than the 30 train features; it is clipped to 30" in capsys.readouterr().out
    assert set(results) == {10, 200}


def test_linear_command_matches_the_function(teacher_dump, tmp_path):
    dump = teacher_dump[0] / "features"
    metrics = linear.main(["--load-features", str(dump), "--epochs", "3", "--results", str(tmp_path / "lin.json")])
    _, direct = train_linear_probe(*load_features(dump), epochs=3)
    assert metrics == direct
    assert json.loads((tmp_path / "lin.json").read_text())["top1"] == pytest.approx(metrics["top1"])


def test_linear_probe_separates_separable_features():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (400,), generator=generator)
    features = 10.0 + torch.nn.functional.one_hot(labels, 4).float() + 0.05 * torch.randn(400, 4, generator=generator)
    _, metrics = train_linear_probe(features[:300], labels[:300], features[300:], labels[300:], 4, epochs=20)
    assert metrics["top1"] == 100.0 and metrics["top5"] == 100.0


@pytest.mark.slow  # three Python processes import torch: about 15 s on 2 cores
def test_knn_command_under_two_processes_gathers_without_duplicates(tmp_path):
    """torchrun, 2 CPU processes: 359 val images in batches of 64 leave an uneven last batch that accelerate pads."""
    ckpt = tmp_path / "tiny.pth"
    torch.manual_seed(0)
    resmlp.save_model(resmlp.create_model("resmlp_tiny", num_classes=0), ckpt)  # our format, config inside
    with socket.socket() as probe:  # a free port, not a fixed one that a concurrent test may hold
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    args = ["-m", "ssl_dino.knn", "--checkpoint", str(ckpt), "--nb-knn", "20", "--batch-size", "64"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        command + args + ["--dump-features", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("20-NN classifier result") == 1  # printed by the main process only
    two = load_features(tmp_path / "two")
    knn.main(args[2:] + ["--dump-features", str(tmp_path / "one")])
    one = load_features(tmp_path / "one")
    assert two[0].shape == (DIGITS_TRAIN, 32) and two[2].shape == (DIGITS_VAL, 32)
    for a, b in zip(one[:4], two[:4]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_knn_command_on_an_image_folder(tmp_path):
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split, per_class in (("train", 4), ("val", 2)):
        for label, shade in (("dark", 40), ("light", 215)):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (shade + 20 * torch.randn(20, 20, 3, generator=rng)).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    args = ["--random-init", "--arch", "resmlp_tiny", "--data", f"folder:{tmp_path / 'data'}", "--nb-knn", "3"]
    results = knn.main(args + ["--dump-features", str(tmp_path / "f")])
    train_x, _, test_x, _, num_classes = load_features(tmp_path / "f")
    assert (len(train_x), len(test_x), num_classes) == (8, 4, 2)
    assert results[3][0] == 100.0  # dark and light images are far apart even for random features


def test_timm_backbone_loads_from_a_dino_checkpoint(tmp_path):
    from ssl_dino.backbone import build_backbone
    from ssl_dino.pretrained import load_backbone

    torch.manual_seed(0)
    source = build_backbone("test_resnet")
    path = tmp_path / "dino_resnet.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in source.state_dict().items()}, "epoch": 1}, path)
    loaded = load_backbone(path, arch="test_resnet")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    with pytest.raises(ValueError, match="does not fit"):
        load_backbone(path, arch="test_vit")


def test_knn_reads_a_dino_checkpoint_folder_teacher_by_default_student_on_request(tmp_path):
    from ssl_dino.eval_cli import _file_in_checkpoint_folder
    from ssl_dino.pretrained import load_backbone
    from ssl_dino.recipe import DinoRecipe
    from ssl_dino.train import train
    from trainkit import load_recipe

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "dino" / "resmlp_tiny_test.yaml"
    overrides = ["run.max_steps=2", "run.save_every_steps=0", "monitor.every_epochs=0", "run.tensorboard=false"]
    train(load_recipe(DinoRecipe, recipe, overrides), tmp_path / "run")
    folder = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))[-1]
    teacher = load_backbone(_file_in_checkpoint_folder(folder, None)[0]).state_dict()
    student = load_backbone(_file_in_checkpoint_folder(folder, "student")[0]).state_dict()
    exported = load_backbone(tmp_path / "run" / "model.pth").state_dict()
    assert all(torch.equal(teacher[k], exported[k]) for k in exported)  # the folder's teacher is model.pth
    assert not all(torch.equal(teacher[k], student[k]) for k in student)
    argv = ["--checkpoint", str(folder), "--checkpoint-key", "student", "--data", "digits", "--nb-knn", "5"]
    results = knn.main(argv)
    assert 0 <= results[5][0] <= 100
    with pytest.raises(SystemExit):
        knn.main(["--checkpoint", str(folder), "--checkpoint-key", "ema", "--data", "digits"])
