"""Non-finite loss guard (trainkit.guards), alone and inside the tiny training loop."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from trainkit.guards import NonFiniteLossError, check_finite_loss
from trainkit.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def test_finite_losses_pass():
    check_finite_loss(torch.tensor(2.5), step=0)
    check_finite_loss(1e30, step=1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_names_the_step_and_the_fixes(value):
    with pytest.raises(NonFiniteLossError, match=r"step 17 .*lower optim\.lr.*optim\.clip_grad") as err:
        check_finite_loss(torch.tensor([1.0, value]), step=17, precision="fp16")
    assert "run.precision=no" in str(err.value)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState

    spec = importlib.util.spec_from_file_location("tiny_train", REPO / "tests/scripts/tiny_train.py")
    tiny = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "tiny_train", tiny)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(tiny)
    cfg = load_recipe(tiny.TinyRecipe, None, ["fault.nan_at_step=5", "run.tensorboard=false"])
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        with pytest.raises(NonFiniteLossError, match="step 5"):
            tiny.train(cfg, tmp_path)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step_000000004"]
    assert not (tmp_path / "model.pth").exists()
