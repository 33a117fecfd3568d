"""Per-step schedules as pure functions of the global optimiser step (no state to checkpoint, nothing to prepare).

The learning rate follows DeiT's recipe (linear warmup, then cosine to a floor) but is evaluated at every step
rather than every epoch, as DINO does; DINO's weight-decay and teacher-momentum ramps use ``cosine_between``::

    per_epoch = steps_per_epoch(len(train_loader), cfg.run.grad_accum_steps)
    total = cfg.schedule.epochs * per_epoch
    for step in range(start.step, total):
        set_lr(optimizer, schedule_lr(step, cfg.schedule, peak_lr, per_epoch))
        momentum = cosine_between(step, total, start=0.996, end=1.0)   # DINO teacher

``lr_at`` is the same curve with explicit arguments, for loops that count steps differently.
"""

from __future__ import annotations

import math

import torch

from .sections import ScheduleConfig


def steps_per_epoch(batches_per_epoch: int, grad_accum_steps: int = 1) -> int:
    """Optimiser steps per epoch of ``batches_per_epoch`` batches per process (a partial accumulation counts)."""
    if batches_per_epoch <= 0:
        raise ValueError(f"the training loader yields no batch ({batches_per_epoch}); is the dataset too small?")
    return math.ceil(batches_per_epoch / grad_accum_steps)


def cosine_between(step: int, total_steps: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` at step 0 to ``end`` at step ``total_steps - 1``; constant ``end`` afterwards."""
    if total_steps <= 1:
        return end
    progress = min(max(step, 0), total_steps - 1) / (total_steps - 1)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def lr_at(step: int, *, peak_lr: float, total_steps: int, warmup_steps: int, warmup_lr: float, min_lr: float) -> float:
    """Learning rate at ``step``: linear from ``warmup_lr`` to ``peak_lr`` over ``warmup_steps``, then cosine to
    ``min_lr`` at the last step (``total_steps - 1``).

    Step ``warmup_steps`` is the first to use ``peak_lr``; with no warmup, step 0 already does.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must lie in [0, total_steps={total_steps}], got {warmup_steps}")
    if step < warmup_steps:
        return warmup_lr + (peak_lr - warmup_lr) * step / warmup_steps
    return cosine_between(step - warmup_steps, total_steps - warmup_steps, peak_lr, min_lr)


def schedule_lr(step: int, schedule: ScheduleConfig, peak_lr: float, steps_in_epoch: int) -> float:
    """``lr_at`` with its arguments taken from a ``ScheduleConfig`` (warmup epochs converted to steps)."""
    total = schedule.epochs * steps_in_epoch
    warmup = round(schedule.warmup_epochs * steps_in_epoch)
    return lr_at(
        step,
        peak_lr=peak_lr,
        total_steps=total,
        warmup_steps=warmup,
        warmup_lr=schedule.warmup_lr,
        min_lr=schedule.min_lr,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (groups keep their own weight decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
