"""DINO pretraining end to end (``ssl_dino.train``) on the built-in digits with resmlp_tiny and a 64-prototype head.

Runs go through the real entry points (``python -m ssl_dino.train``, ``accelerate launch``) in subprocesses with one
thread each, so results are bit-reproducible between runs; the uninterrupted reference run is shared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import resmlp
from ssl_dino.recipe import DinoRecipe
from ssl_dino.train import build_student, main
from trainkit import load_recipe, read_jsonl

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "dino" / "resmlp_tiny_test.yaml"
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    return clean | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def run(out: Path, *overrides: str, launcher: list[str] | None = None, extra_env=None, check=True):
    launcher = launcher or [sys.executable, "-m", "ssl_dino.train"]
    command = [*launcher, "--recipe", str(TINY), "--output-dir", str(out), *overrides]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env() | (extra_env or {}))
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def centre(out: Path, step: int) -> torch.Tensor:
    """The DINO loss centre in checkpoint ``step``."""
    return load_file(str(out / "checkpoints" / f"step_{step:09d}" / "dino_loss.safetensors"))["center"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dino") / "reference"
    run(out)
    return out


def test_one_process_run_monitors_knn_and_exports_the_teacher(reference):
    for name in ("config.yaml", "metrics.jsonl", "curves.png", "model.pth", "tensorboard", "checkpoints/latest"):
        assert (reference / name).exists(), name
    records = read_jsonl(reference / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 6]  # before the first step, and after the last
    assert all(0.0 <= r["knn_top1"] <= 100.0 for r in records)
    model = resmlp.create_model("resmlp_tiny", checkpoint=reference / "model.pth", num_classes=0)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 32)
    teacher = load_file(str(reference / "checkpoints" / "step_000000006" / "teacher.safetensors"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, teacher[f"backbone.{key}"], rtol=0, atol=0)
    assert centre(reference, 6).abs().sum() > 0  # the centre moved and is saved


def test_two_processes_through_accelerate_launch(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    config = REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"
    launcher = [ACCELERATE, "launch", "--config_file", str(config), "--main_process_port", port, "-m", "ssl_dino.train"]
    result = run(tmp_path / "two", "run.batch_size=8", launcher=launcher)
    assert "2 process(es), total batch 16" in result.stdout
    assert [r["step"] for r in read_jsonl(tmp_path / "two" / "metrics.jsonl")] == [0, 6]
    resmlp.create_model("resmlp_tiny", checkpoint=tmp_path / "two" / "model.pth", num_classes=0)


def test_kill_9_then_resume_equals_the_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "killed"
    script = [sys.executable, str(REPO / "tests" / "scripts" / "dino_kill.py")]
    killed = run(out, launcher=script, extra_env={"DINO_KILL_AT_STEP": "3"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000000002"
    resumed = run(out)
    assert "from step 2" in resumed.stdout
    a = resmlp.read_checkpoint(out / "model.pth")[0]
    b = resmlp.read_checkpoint(reference / "model.pth")[0]
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    torch.testing.assert_close(centre(out, 6), centre(reference, 6), rtol=0, atol=0)
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [0, 6]


def test_ctrl_c_mid_step_saves_that_step_and_the_resumed_run_equals_the_uninterrupted_one(reference, tmp_path):
    out = tmp_path / "interrupted"
    script = [sys.executable, str(REPO / "tests" / "scripts" / "dino_kill.py")]
    stopped = run(out, launcher=script, extra_env={"DINO_KILL_AT_STEP": "3", "DINO_SIGNAL": "INT"}, check=False)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("ssl_dino.train: error: stopped by SIGINT after step 3 ") and "Traceback" not in stopped.stderr
    )
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000000003"  # the step it was in, finished
    resumed = run(out)
    assert "from step 3" in resumed.stdout
    a = resmlp.read_checkpoint(out / "model.pth")[0]
    b = resmlp.read_checkpoint(reference / "model.pth")[0]
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    torch.testing.assert_close(centre(out, 6), centre(reference, 6), rtol=0, atol=0)
    got, expected = read_jsonl(out / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [r["knn_top1"] for r in got] == [r["knn_top1"] for r in expected]
    assert got[-1]["train_loss"] == pytest.approx(expected[-1]["train_loss"], rel=1e-9)  # spans the interruption


def test_ctrl_c_in_a_terminal_stops_both_processes_at_one_step_with_one_message(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    config = REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"
    launcher = [ACCELERATE, "launch", "--config_file", str(config), "--main_process_port", port, "-m", "ssl_dino.train"]
    out = tmp_path / "two"
    command = [*launcher, "--recipe", str(TINY), "--output-dir", str(out), "run.batch_size=8", "run.max_steps=400"]
    command += ["monitor.every_epochs=0", "run.save_every_steps=5"]
    proc = subprocess.Popen(command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 180
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the launcher and both workers; the launcher forwards it
    _, stderr = proc.communicate(timeout=120)
    stops = [line for line in stderr.splitlines() if "stopped by SIGINT after step" in line]
    assert len(stops) == 1, stderr[-3000:]  # printed once, by the main process
    step = int(stops[0].split("after step ")[1].split(" ")[0])
    folder = out / "checkpoints" / f"step_{step:09d}"
    assert latest.read_text().strip() == folder.name
    position = json.loads((folder / "position.json").read_text())
    assert position["step"] == step and position["num_processes"] == 2
    assert {"rng_0.safetensors", "rng_1.safetensors"} <= {p.name for p in folder.iterdir()}  # both processes saved


def test_unknown_backbone_lists_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--recipe", str(TINY), "--output-dir", str(tmp_path / "x"), "backbone.name=resmlp_s99"])
    message = capsys.readouterr().err
    assert err.value.code == 2 and message.count("\n") == 1
    assert "unknown backbone 'resmlp_s99'" in message and "resmlp_s12" in message
    assert not (tmp_path / "x").exists()  # refused before any file is written


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["crops.policy=native"], "only takes 16x16"),
        (["crops.local_size=7"], "multiple of 4"),
        (["crops.policy=derived_subgrid", "crops.local_size=20"], "local_size <= global_size"),
    ],
)
def test_crop_policy_that_cannot_work_fails_at_start_and_says_why(tmp_path, capsys, overrides, reason):
    with pytest.raises(SystemExit) as err:
        main(["--recipe", str(TINY), "--output-dir", str(tmp_path / "x"), *overrides])
    assert err.value.code == 2 and reason in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "dino").glob("*.yaml")), ids=lambda p: p.name)
def test_every_dino_recipe_loads_and_builds(path):
    cfg = load_recipe(DinoRecipe, path)
    student = build_student(cfg)
    assert student.head.out_dim == cfg.dino.out_dim


@pytest.mark.parametrize("img_size", [16, 32])
def test_default_local_size_is_in_whole_patches(img_size):
    # DINO's 96/224 ratio gives 6.9 px at 16 px and 13.7 px at 32 px: the default rounds to whole 4 px patches.
    overrides = ["backbone.name=resmlp_mini", f"backbone.img_size={img_size}", "crops.local_size=null"]
    student = build_student(load_recipe(DinoRecipe, TINY, overrides))
    assert student.policy.local_size == {16: 8, 32: 12}[img_size]
