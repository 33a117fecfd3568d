"""Per-step schedules (trainkit.schedules) and the optimiser with its no-weight-decay group (trainkit.optim)."""

from __future__ import annotations

import math

import pytest
import torch

import resmlp
from trainkit.optim import build_ema, build_optimizer, param_groups
from trainkit.schedules import cosine_between, lr_at, schedule_lr, set_lr, steps_per_epoch
from trainkit.sections import OptimConfig, ScheduleConfig

WARMUP = dict(peak_lr=1.0, total_steps=100, warmup_steps=10, warmup_lr=0.01, min_lr=0.001)


def test_lr_endpoints_warmup_and_cosine():
    assert lr_at(0, **WARMUP) == pytest.approx(0.01)
    assert lr_at(5, **WARMUP) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_at(10, **WARMUP) == pytest.approx(1.0)  # first step at the peak
    assert lr_at(99, **WARMUP) == pytest.approx(0.001)  # last step at the floor
    assert lr_at(55, **WARMUP) < (1.0 + 0.001) / 2 < lr_at(54, **WARMUP)  # cosine steps 10..99: midpoint 54.5
    assert lr_at(150, **WARMUP) == pytest.approx(0.001)  # past the end: stays at the floor


def test_lr_rises_during_warmup_then_falls():
    lrs = [lr_at(s, **WARMUP) for s in range(100)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_no_warmup_starts_at_peak_and_bad_warmup_is_refused():
    assert lr_at(0, **{**WARMUP, "warmup_steps": 0}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_at(0, **{**WARMUP, "warmup_steps": 101})


def test_cosine_between_endpoints_both_directions():
    assert cosine_between(0, 50, 0.04, 0.4) == pytest.approx(0.04)  # DINO weight decay
    assert cosine_between(49, 50, 0.04, 0.4) == pytest.approx(0.4)
    assert cosine_between(0, 50, 0.996, 1.0) == pytest.approx(0.996)  # DINO teacher momentum
    assert cosine_between(24.5, 50, 0.0, 1.0) == pytest.approx(0.5)
    momenta = [cosine_between(s, 50, 0.996, 1.0) for s in range(50)]
    assert all(a <= b for a, b in zip(momenta, momenta[1:]))
    assert cosine_between(3, 1, 0.0, 1.0) == 1.0


def test_schedule_lr_converts_epochs_to_steps():
    schedule = ScheduleConfig(epochs=4, warmup_epochs=1, warmup_lr=0.0, min_lr=0.0)
    assert schedule_lr(0, schedule, 2.0, steps_in_epoch=10) == 0.0
    assert schedule_lr(10, schedule, 2.0, steps_in_epoch=10) == pytest.approx(2.0)
    assert schedule_lr(39, schedule, 2.0, steps_in_epoch=10) == pytest.approx(0.0)
    assert steps_per_epoch(10, grad_accum_steps=3) == 4
    with pytest.raises(ValueError, match="no batch"):
        steps_per_epoch(0)


def test_deit_lr_scaling_rule():
    assert OptimConfig(lr=5e-3).scaled_lr(2048) == pytest.approx(2e-2)
    assert OptimConfig(lr=5e-3, lr_reference_batch=None).scaled_lr(2048) == 5e-3


def test_no_weight_decay_on_biases_affine_and_layerscale():
    model = resmlp.create_model("resmlp_tiny")
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    free = {names[id(p)] for p in no_decay["params"]}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.2, 0.0)
    assert all(n.endswith(".weight") and "norm" not in n for n in decayed)
    assert {"blocks.0.token_mix.norm.alpha", "blocks.0.token_mix.norm.beta", "blocks.0.token_mix.ls.gamma"} <= free
    assert {"blocks.1.channel_mix.ls.gamma", "norm.alpha", "head.bias", "blocks.0.token_mix.op.bias"} <= free
    assert decayed | free == set(names.values()) and not decayed & free


@pytest.mark.parametrize(("name", "cls"), [("lamb", "Lamb"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_build_optimizer_uses_timm_with_scaled_lr(name, cls):
    model = resmlp.create_model("resmlp_tiny")
    optimizer = build_optimizer(model, OptimConfig(name=name, lr=1e-3, weight_decay=0.1), total_batch=1024)
    assert type(optimizer).__name__ == cls and type(optimizer).__module__.startswith(("timm", "torch"))
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(2e-3)] * 2
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.9 and not optimizer.defaults["nesterov"]
    set_lr(optimizer, 0.5)
    assert all(g["lr"] == 0.5 for g in optimizer.param_groups)
    loss = model(torch.randn(2, 3, 16, 16)).logsumexp(dim=1).mean()
    loss.backward()
    optimizer.step()
    assert all(math.isfinite(p.sum().item()) for p in model.parameters())


def test_ema_is_optional():
    model = resmlp.create_model("resmlp_tiny")
    assert build_ema(model, None) is None
    ema = build_ema(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.head.bias, model.head.bias - 0.5)
