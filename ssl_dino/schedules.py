"""DINO's per-iteration schedules as pure functions of the global step, built on ``trainkit.schedules``.

learning rate: linear warm-up from 0 over ``warmup_epochs``, then cosine to ``min_lr``; weight decay: cosine
0.04 -> 0.4; teacher momentum: cosine 0.996 -> 1; teacher temperature: linear warm-up 0.04 -> final over
``warmup_teacher_temp_epochs``, then constant, per epoch as the reference or per iteration. Nothing to checkpoint:
resuming at step s reads the same values.

The reference precomputes arrays whose cosines stop one step short of the end value; here the end value is reached
at the last step (``trainkit.schedules.cosine_between``), a difference of one step out of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainkit.schedules import cosine_between, lr_at


def teacher_temp_at(
    step: int,
    *,
    steps_per_epoch: int,
    warmup_temp: float = 0.04,
    final_temp: float = 0.04,
    warmup_epochs: int = 0,
    per_iteration: bool = False,
) -> float:
    """Teacher temperature at ``step``: linear ``warmup_temp`` -> ``final_temp`` over ``warmup_epochs``, then flat.

    Per epoch (the reference): every step of epoch e reads ``linspace(warmup_temp, final_temp, warmup_epochs)[e]``,
    so the last warm-up epoch already uses ``final_temp``. Per iteration: the same line sampled at every step. DINO's
    default is 0.04 throughout; its "boosted" setting is 0.04 -> 0.07 over 30 epochs (above 0.07 is unstable).
    """
    if steps_per_epoch <= 0 or warmup_epochs < 0 or min(warmup_temp, final_temp) <= 0:
        raise ValueError(
            f"need steps_per_epoch > 0, warmup_epochs >= 0 and positive temperatures, got {steps_per_epoch}, "
            f"{warmup_epochs}, {warmup_temp} and {final_temp}"
        )
    if per_iteration:
        span, position = warmup_epochs * steps_per_epoch, step
    else:
        span, position = warmup_epochs, step // steps_per_epoch
    if position >= span:
        return final_temp
    # linspace(a, b, span)[i]: span points from a to b inclusive.
    return warmup_temp + (final_temp - warmup_temp) * (position / (span - 1) if span > 1 else 1.0)


@dataclass(frozen=True)
class DINOSchedule:
    """Every per-step value of a DINO run, with the reference defaults.

    Attributes:
        epochs: Training epochs.
        steps_per_epoch: Optimiser steps per epoch.
        lr: Peak learning rate, already scaled for the batch (the reference: 5e-4 * total_batch / 256).
        min_lr: Learning rate at the last step.
        warmup_epochs: Linear lr warm-up from 0 (10 in DINO).
        weight_decay, weight_decay_end: Cosine weight decay (for the group that takes weight decay only).
        momentum_teacher: Start of the cosine teacher momentum, which ends at 1 (use 0.9995 for small batches).
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs: The teacher temperature warm-up.
        teacher_temp_per_iteration: Ramp the temperature every step instead of every epoch.
    """

    epochs: int
    steps_per_epoch: int
    lr: float
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    teacher_temp_per_iteration: bool = False

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.steps_per_epoch <= 0:
            raise ValueError(f"epochs and steps_per_epoch must be positive, got {self.epochs}, {self.steps_per_epoch}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if not 0.0 <= self.momentum_teacher <= 1.0:
            raise ValueError(f"momentum_teacher must be in [0, 1], got {self.momentum_teacher}")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        return lr_at(
            step,
            peak_lr=self.lr,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_epochs * self.steps_per_epoch,
            warmup_lr=0.0,
            min_lr=self.min_lr,
        )

    def weight_decay_at(self, step: int) -> float:
        return cosine_between(step, self.total_steps, self.weight_decay, self.weight_decay_end)

    def teacher_momentum_at(self, step: int) -> float:
        return cosine_between(step, self.total_steps, self.momentum_teacher, 1.0)

    def teacher_temp_at(self, step: int) -> float:
        return teacher_temp_at(
            step,
            steps_per_epoch=self.steps_per_epoch,
            warmup_temp=self.warmup_teacher_temp,
            final_temp=self.teacher_temp,
            warmup_epochs=self.warmup_teacher_temp_epochs,
            per_iteration=self.teacher_temp_per_iteration,
        )

    def at(self, step: int) -> dict[str, float]:
        """``{"lr", "weight_decay", "teacher_momentum", "teacher_temp"}`` at the global ``step``."""
        return {
            "lr": self.lr_at(step),
            "weight_decay": self.weight_decay_at(step),
            "teacher_momentum": self.teacher_momentum_at(step),
            "teacher_temp": self.teacher_temp_at(step),
        }
