"""Crash-safe checkpoints (trainkit.checkpoints): full state, atomic publish, rotation, resume modes, export."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import resmlp
from trainkit.accel import build_accelerator
from trainkit.checkpoints import CheckpointManager, Position, ResumeError, export_final_model
from trainkit.optim import build_ema, build_optimizer
from trainkit.sections import OptimConfig, RunConfig

REPO = Path(__file__).resolve().parents[1]


def new_accelerator(output_dir: Path):
    """A fresh single-process Accelerator, as a new process would build it (accelerate's state is global)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return build_accelerator(RunConfig(tensorboard=False), output_dir)


@pytest.fixture
def accelerator(tmp_path):
    from accelerate.state import AcceleratorState

    yield new_accelerator(tmp_path)
    AcceleratorState._reset_state(reset_partial_state=True)


def make_state(accelerator, seed: int = 0):
    """A prepared tiny model, its AdamW optimiser (one step taken, so it has moments) and an EMA."""
    torch.manual_seed(seed)
    model = resmlp.create_model("resmlp_tiny")
    ema = build_ema(model, 0.9)
    optimizer = build_optimizer(model, OptimConfig(name="adamw", lr=1e-2), total_batch=512)
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.randn(4, 3, 16, 16)).logsumexp(1).mean().backward()
    optimizer.step()
    ema.update(model)
    return model, optimizer, ema


def manager(directory: Path, accelerator, model, optimizer, ema=None, **kwargs) -> CheckpointManager:
    extras = {"ema": ema} if ema is not None else {}
    return CheckpointManager(directory, accelerator, model=model, optimizer=optimizer, extras=extras, **kwargs)


def snapshot(model, optimizer, ema) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "exp_avg": [s["exp_avg"].clone() for s in optimizer.state.values()],
        "ema": {k: v.clone() for k, v in ema.state_dict().items()},
    }


def rng_draws() -> tuple:
    return torch.rand(3).tolist(), random.random(), float(np.random.rand())


def test_resume_restores_model_optimizer_ema_rng_and_position(tmp_path, accelerator):
    model, optimizer, ema = make_state(accelerator)
    ckpt = manager(tmp_path / "checkpoints", accelerator, model, optimizer, ema)
    saved = ckpt.save(step=5, epoch=1, batch=2, extra={"best_top1": 12.5})
    before, draws = snapshot(model, optimizer, ema), rng_draws()

    rng_draws()  # the RNG moves on
    fresh = new_accelerator(tmp_path)
    model, optimizer, ema = make_state(fresh, seed=1)  # other weights, other moments
    assert not torch.equal(model.state_dict()["head.weight"], before["model"]["head.weight"])
    again = manager(tmp_path / "checkpoints", fresh, model, optimizer, ema)
    start = again.resume("auto")

    assert start == Position(step=5, epoch=1, batch=2, extra={"best_top1": 12.5}, path=saved)
    assert rng_draws() == draws
    after = snapshot(model, optimizer, ema)
    for key, value in before["model"].items():
        assert torch.equal(after["model"][key], value), key
    assert all(torch.equal(a, b) for a, b in zip(after["exp_avg"], before["exp_avg"]))
    assert all(torch.equal(after["ema"][k], v) for k, v in before["ema"].items())


def test_rotation_keeps_the_last_k_and_points_latest_at_the_newest(tmp_path, accelerator):
    model, optimizer, _ = make_state(accelerator)
    ckpt = manager(tmp_path, accelerator, model, optimizer, keep_last=2)
    for step in (1, 2, 3, 4):
        ckpt.save(step, epoch=0, batch=step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000000003", "step_000000004"]
    assert (tmp_path / "latest").read_text().strip() == "step_000000004"
    # A second save at the same step gets a new name (a folder is never replaced in place, so `latest` never names
    # a folder that is being swapped), and becomes the latest.
    ckpt.save(4, epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000000004", "step_000000004_1"]
    assert (tmp_path / "latest").read_text().strip() == "step_000000004_1"
    assert ckpt.resume("auto").epoch == 1


def test_crash_between_write_and_rename_leaves_the_previous_checkpoint_latest(tmp_path, accelerator, monkeypatch):
    model, optimizer, _ = make_state(accelerator)
    ckpt = manager(tmp_path, accelerator, model, optimizer)
    ckpt.save(1, epoch=0, batch=1)
    weights_at_1 = {k: v.clone() for k, v in model.state_dict().items()}
    real_replace = os.replace

    def crash_at_commit(src, dst):
        if Path(src).name.startswith(".incomplete-"):
            raise KeyboardInterrupt("simulated kill between write and rename")
        return real_replace(src, dst)

    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    monkeypatch.setattr(os, "replace", crash_at_commit)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(2, epoch=0, batch=2)
    monkeypatch.undo()

    staging = tmp_path / ".incomplete-step_000000002"
    assert (staging / "model.safetensors").is_file()  # the new state was fully written ...
    assert ckpt.latest() == tmp_path / "step_000000001"  # ... but never published
    assert (tmp_path / "latest").read_text().strip() == "step_000000001"
    start = manager(tmp_path, accelerator, model, optimizer).resume("auto")  # same process: the same prepared model
    assert start.step == 1 and not staging.exists()  # leftovers are cleaned on resume
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights_at_1.items())


def test_resume_modes_off_path_and_errors(tmp_path, accelerator):
    model, optimizer, _ = make_state(accelerator)
    ckpt = manager(tmp_path / "out" / "checkpoints", accelerator, model, optimizer)
    assert ckpt.resume("off") == Position() and ckpt.resume("auto") == Position()
    ckpt.save(1, epoch=0, batch=1)
    ckpt.save(2, epoch=0, batch=2)
    with pytest.raises(ResumeError, match="resume=off but .* already holds checkpoints"):
        ckpt.resume("off")
    assert ckpt.resume(str(tmp_path / "out" / "checkpoints" / "step_000000001")).step == 1
    assert ckpt.resume(tmp_path / "out").step == 2  # an output directory: its newest checkpoint
    with pytest.raises(ResumeError, match="no complete checkpoint there"):
        ckpt.resume(str(tmp_path / "nowhere"))


def test_export_final_model_loads_with_create_model(tmp_path, accelerator):
    model, _, _ = make_state(accelerator)
    path = export_final_model(model, tmp_path / "model.pth", accelerator)
    loaded = resmlp.create_model("resmlp_tiny", checkpoint=path)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    assert torch.allclose(loaded.eval()(x), model(x))
    with pytest.raises(TypeError, match="needs a resmlp.ResMLP"):
        export_final_model(torch.nn.Linear(2, 2), tmp_path / "linear.pth", accelerator)


def run_tiny(output_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    script = str(REPO / "tests/scripts/tiny_train.py")
    command = [sys.executable, script, "--output-dir", str(output_dir), "run.tensorboard=false", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)


@pytest.mark.slow
def test_kill_9_mid_epoch_and_during_a_save_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = run_tiny(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]

    # Steps 4 and 8 are mid-epoch saves (6 steps per epoch); the kill hits the save of step 12 before its commit.
    killed = run_tiny(tmp_path / "run", "fault.kill_during_save_at=12")
    assert killed.returncode == -9
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step_000000008"
    assert (checkpoints / ".incomplete-step_000000012" / "model.safetensors").is_file()
    assert json.loads((checkpoints / "step_000000008" / "position.json").read_text())["batch"] == 2

    resumed = run_tiny(tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = torch.load(tmp_path / "reference" / "model.pth", weights_only=True)["model"]
    got = torch.load(tmp_path / "run" / "model.pth", weights_only=True)["model"]
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    # One evaluation per epoch, the interrupted run's records replaced rather than duplicated.
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
