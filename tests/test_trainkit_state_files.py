"""trainkit.state_files: training state round-trips through safetensors + JSON exactly, and bad files are named."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import resmlp
from trainkit.optim import build_optimizer
from trainkit.sections import OptimConfig
from trainkit.state_files import (
    StateFileError,
    read_optimizer,
    read_rng,
    read_tensors,
    set_rng,
    write_optimizer,
    write_rng,
    write_tensors,
)


def stepped_optimizer(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = resmlp.create_model("resmlp_tiny")
    optimizer = build_optimizer(model, OptimConfig(name=name, lr=1e-2), total_batch=512)
    for _ in range(2):
        model(torch.randn(2, 3, 16, 16)).logsumexp(1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


@pytest.mark.parametrize("name", ["lamb", "adamw", "sgd"])
def test_optimizer_state_round_trips_and_the_next_step_is_identical(tmp_path, name):
    model, optimizer = stepped_optimizer(name)
    write_optimizer(tmp_path / "optimizer.safetensors", optimizer.state_dict())
    other_model, other = stepped_optimizer(name, seed=1)
    other_model.load_state_dict(model.state_dict())
    other.load_state_dict(read_optimizer(tmp_path / "optimizer.safetensors"))
    x = torch.randn(2, 3, 16, 16)
    for m, opt in ((model, optimizer), (other_model, other)):
        m(x).logsumexp(1).mean().backward()
        opt.step()
    for a, b in zip(model.parameters(), other_model.parameters()):
        assert torch.equal(a, b)
    assert other.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_rng_states_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian in NumPy's state
    write_rng(tmp_path / "rng_0.safetensors")
    expected = (random.random(), float(np.random.randn()), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng(read_rng(tmp_path / "rng_0.safetensors"))
    assert (random.random(), float(np.random.randn()), torch.rand(3).tolist()) == expected


def test_tensors_with_shared_memory_are_saved(tmp_path):
    base = torch.arange(6.0)
    write_tensors(tmp_path / "t.safetensors", {"a": base, "view": base[:3], "tied": base})
    loaded = read_tensors(tmp_path / "t.safetensors")
    assert torch.equal(loaded["view"], base[:3]) and torch.equal(loaded["tied"], base)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(StateFileError, match=r"missing"):
        read_tensors(tmp_path / "none.safetensors")
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(StateFileError, match=r"x\.safetensors: not a valid safetensors file"):
        read_tensors(tmp_path / "x.safetensors")
    write_tensors(tmp_path / "model.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(StateFileError, match=r"model\.safetensors: it is not an optimiser state"):
        read_optimizer(tmp_path / "model.safetensors")
    with pytest.raises(StateFileError, match=r"not a random-generator state"):
        read_rng(tmp_path / "model.safetensors")
    with pytest.raises(TypeError, match="not tensors"):
        write_tensors(tmp_path / "bad.safetensors", {"step": 3})
