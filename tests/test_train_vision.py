"""End-to-end runs of ``vision.train``: learning, 2 processes against 1, kill -9 and resume, bad input.

Every run is the real entry point (``python -m vision.train`` or ``accelerate launch``) on the built-in digits at
16 px with ``resmlp_tiny``, a few dozen steps.
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
from trainkit import NonFiniteLossError, RecipeError, load_recipe, read_jsonl
from vision.data import DataError
from vision.recipe import VisionRecipe
from vision.train import train

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "vision" / "resmlp_digits.yaml"
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
# A small, fully augmented configuration: random crops, Mixup/CutMix, drop path, EMA.
TINY = [
    "model.name=resmlp_tiny",
    "model.drop_path_rate=0.1",
    "data.builtin_size=16",
    "augment.mixup=0.8",
    "augment.cutmix=1.0",
    "optim.ema_decay=0.9",
    "run.batch_size=16",
    "run.log_every_steps=5",
    "run.eval_every_epochs=1",
]


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    return clean | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def run_python(out: Path, *overrides: str, script: list[str] | None = None, extra_env=None, check=True):
    command = [sys.executable, *(script or ["-m", "vision.train"]), "--recipe", str(RECIPE), "--output-dir", str(out)]
    result = subprocess.run(
        [*command, *TINY, *overrides], capture_output=True, text=True, cwd=REPO, env=env() | (extra_env or {})
    )
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def weights(out: Path) -> dict[str, torch.Tensor]:
    return resmlp.read_checkpoint(out / "model.pth")[0]


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=atol, msg=key)


def test_digits_run_learns_and_writes_its_outputs(tmp_path):
    out = tmp_path / "run"
    learn = ["schedule.epochs=4", "schedule.warmup_epochs=1", "optim.lr=4e-3", "optim.lr_reference_batch=16"]
    run_python(out, *learn, "augment.mixup=0.0", "augment.cutmix=0.0")
    evals = [r for r in read_jsonl(out / "metrics.jsonl") if "top1" in r]
    assert [r["epoch"] for r in evals] == [0, 1, 2, 3]
    assert all({"epoch", "step", "top1", "top5", "loss"} <= r.keys() for r in evals)
    assert evals[-1]["loss"] < evals[0]["loss"]
    assert evals[-1]["top1"] > 40.0  # chance is 10%
    assert (out / "config.yaml").is_file() and (out / "curves.png").stat().st_size > 1000
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    # The exported model loads with create_model and reproduces the logged accuracy's ballpark.
    model = resmlp.create_model("resmlp_tiny", checkpoint=out / "model.pth")
    assert model.config.num_classes == 10 and model.config.img_size == 16


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    # No randomness that depends on the batch split: no Mixup, no drop path; augmentation is seeded per sample.
    same = ["augment.mixup=0.0", "augment.cutmix=0.0", "model.drop_path_rate=0.0", "run.max_steps=6"]
    run_python(tmp_path / "one", *same, "run.batch_size=16")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    config = REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"
    command = [ACCELERATE, "launch", "--config_file", str(config), "--main_process_port", port, "-m", "vision.train"]
    command += ["--recipe", str(RECIPE), "--output-dir", str(tmp_path / "two"), *TINY, *same, "run.batch_size=8"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "2 process(es) x batch 8" in result.stdout
    assert_same_weights(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_kill_during_training_and_during_a_save_then_resume_equals_uninterrupted(tmp_path):
    budget = ["schedule.epochs=3", "run.save_every_steps=4"]  # 89 steps per epoch at batch 16: 3 epochs, 16 steps
    run_python(tmp_path / "ref", *budget)

    # kill -9 in the middle of training, as soon as a first checkpoint exists.
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "vision.train", "--recipe", str(RECIPE), "--output-dir", str(killed)]
    proc = subprocess.Popen([*command, *TINY, *budget], cwd=REPO, env=env(), stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "latest").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_python(killed, *budget)  # resume: auto
    assert_same_weights(tmp_path / "ref", killed)

    # kill -9 inside the write of the step-8 checkpoint: step 4 stays the latest complete one.
    torn = tmp_path / "torn"
    script = ["tests/scripts/vision_kill_in_save.py"]
    result = run_python(torn, *budget, script=script, extra_env={"KILL_IN_SAVE_AT_STEP": "8"}, check=False)
    assert result.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (torn / "checkpoints").glob("step_*")) == ["step_000000004"]
    run_python(torn, *budget)
    assert_same_weights(tmp_path / "ref", torn)


# Ctrl-C: 80 steps, a checkpoint every 10, one DataLoader worker (a terminal's Ctrl-C reaches it too).
INTERRUPTIBLE = ["run.max_steps=80", "run.save_every_steps=10", "run.num_workers=1", "schedule.epochs=2"]


@pytest.fixture(scope="module")
def interruptible_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vision") / "reference"
    run_python(out, *INTERRUPTIBLE)
    return out


def start_in_terminal(out: Path, *overrides: str, script: list[str] | None = None, extra_env=None):
    """The command in its own process group, as a shell runs it in a terminal (a Ctrl-C reaches the whole group)."""
    command = [sys.executable, *(script or ["-m", "vision.train"]), "--recipe", str(RECIPE), "--output-dir", str(out)]
    return subprocess.Popen(
        [*command, *TINY, *overrides],
        cwd=REPO,
        env=env() | (extra_env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared (exit status {proc.poll()})"


def test_ctrl_c_saves_says_how_to_resume_and_the_resumed_run_equals_an_uninterrupted_one(
    tmp_path, interruptible_reference
):
    out = tmp_path / "interrupted"
    proc = start_in_terminal(out, *INTERRUPTIBLE)
    wait_for(out / "checkpoints" / "latest", proc)  # training is under way
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the main process and its DataLoader worker
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vision.train: error: stopped by SIGINT after step ") and "Traceback" not in stderr
    assert "run the same command again" in last
    step = int(last.split("after step ")[1].split(" ")[0])
    assert 10 <= step < 80
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == f"step_{step:09d}"  # complete, and the newest
    assert json.loads((checkpoints / f"step_{step:09d}" / "position.json").read_text())["step"] == step

    resumed = run_python(out, *INTERRUPTIBLE)
    assert f"resuming at step {step}" in resumed.stdout
    assert_same_weights(interruptible_reference, out)
    got, expected = read_jsonl(out / "metrics.jsonl"), read_jsonl(interruptible_reference / "metrics.jsonl")
    assert [(r["step"], r["top1"], r["loss"]) for r in got] == [(r["step"], r["top1"], r["loss"]) for r in expected]
    for a, b in zip(got, expected):  # the training loss of the interval spans the interruption
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)


def test_a_second_ctrl_c_stops_at_once_and_the_last_complete_checkpoint_survives(tmp_path, interruptible_reference):
    out, marker = tmp_path / "twice", tmp_path / "saving"
    script = ["tests/scripts/slow_interrupt_save.py"]
    proc = start_in_terminal(out, *INTERRUPTIBLE, script=script, extra_env={"SLOW_SAVE_MARKER": str(marker)})
    wait_for(out / "checkpoints" / "latest", proc)
    before = (out / "checkpoints" / "latest").read_text().strip()
    os.killpg(proc.pid, signal.SIGINT)
    wait_for(marker, proc)  # the interrupt's save is half-written now (it sleeps inside)
    time.sleep(1.5)  # past the grace period: this is a second Ctrl-C, not the first one forwarded
    started = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT and time.time() - started < 20  # at once, not after the save
    checkpoints = out / "checkpoints"
    latest = (checkpoints / "latest").read_text().strip()
    assert latest >= before and (checkpoints / latest / "position.json").is_file()
    assert list(checkpoints.glob(".incomplete-step_*"))  # the interrupted save never became visible

    run_python(out, *INTERRUPTIBLE)  # resumes from the last complete checkpoint
    assert_same_weights(interruptible_reference, out)


def recipe(*overrides: str) -> VisionRecipe:
    return load_recipe(VisionRecipe, RECIPE, [*TINY, *overrides])


def test_bad_recipe_keys_and_types_name_the_problem():
    with pytest.raises(RecipeError, match=r"optim\.lrr.*optim\.lr"):
        recipe("optim.lrr=0.1")
    with pytest.raises(RecipeError, match=r"run\.batch_size"):
        recipe("run.batch_size=many")
    with pytest.raises(RecipeError, match="resmlp_s12"):
        recipe("model.name=resmlp_s13")


def test_bad_data_is_refused_before_training(tmp_path):
    with pytest.raises(DataError, match="missing"):
        train(recipe(f"data.dataset=folder:{tmp_path / 'missing'}"), tmp_path / "a")
    with pytest.raises(DataError, match="says 7 classes but the data has 10"):
        train(recipe("data.num_classes=7"), tmp_path / "b")
    with pytest.raises(ValueError, match="not divisible by patch_size 4"):
        train(recipe("model.img_size=18", "data.builtin_size=18"), tmp_path / "c")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # A huge learning rate blows the weights up within a few steps.
    cfg = recipe("optim.lr=1e12", "optim.name=sgd", "run.save_every_steps=1", "run.max_steps=40")
    with pytest.raises(NonFiniteLossError, match="step"):
        train(cfg, tmp_path / "nan")
    latest = tmp_path / "nan" / "checkpoints" / (tmp_path / "nan" / "checkpoints" / "latest").read_text().strip()
    saved = load_file(str(latest / "model.safetensors"))
    assert saved and all(torch.isfinite(t).all() for t in saved.values())
