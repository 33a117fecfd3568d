"""The DINO teacher: an exponential moving average of the student, never trained by gradients.

Keep the teacher out of ``accelerator.prepare``: it has no optimiser and no gradients, so DDP would only add a
useless wrapper (the reference wraps it for SyncBatchNorm, which ResMLP does not have), FSDP2 accepts one model per
``prepare``, and every process updates its own copy from identical student weights, so the copies stay equal
without communication. Move it to ``accelerator.device`` yourself and update it from
``accelerator.unwrap_model(student)`` after each optimiser step (when ``accelerator.sync_gradients``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` in eval mode (so stochastic depth is off, as in DINO's teacher).

    Batch-norm layers (``dino.use_bn_in_head``, or a timm CNN backbone) stay in training mode: the reference's
    teacher normalises with the statistics of the batch it sees. In eval mode they would use running statistics
    that nothing updates (the EMA averages parameters, not buffers), so they would stay at their initial (0, 1),
    i.e. no normalisation at all, and the teacher's output would be nearly the same for every image.
    """
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    teacher.eval()
    for module in teacher.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    return teacher


@torch.no_grad()
def update_teacher(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """``teacher_p <- momentum * teacher_p + (1 - momentum) * student_p`` for every parameter.

    Args:
        student: The student, unwrapped (``accelerator.unwrap_model``), so its parameter names match.
        teacher: The teacher, same architecture.
        momentum: From the cosine schedule 0.996 -> 1 (``ssl_dino.schedules``).

    Parameters are paired by name; a mismatch (another architecture, or a DDP-wrapped student whose names carry
    ``module.``) is an error instead of a silent zip of the wrong tensors. Buffers are not averaged, as in DINO
    (the DINO centre lives in the loss, and ResMLP has no buffers).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"teacher momentum must be in [0, 1], got {momentum}")
    student_params = dict(student.named_parameters())
    teacher_params = dict(teacher.named_parameters())
    if student_params.keys() != teacher_params.keys():
        only_student = sorted(student_params.keys() - teacher_params.keys())[:5]
        only_teacher = sorted(teacher_params.keys() - student_params.keys())[:5]
        raise ValueError(
            f"student and teacher parameters differ (only in student: {only_student}, only in teacher: "
            f"{only_teacher}); pass accelerator.unwrap_model(student) and a teacher built by make_teacher(student)"
        )
    names = list(teacher_params)
    teacher_tensors = [teacher_params[n].data for n in names]
    student_tensors = [student_params[n].detach().to(teacher_params[n].dtype) for n in names]
    # One fused multiply-add over all tensors instead of a Python loop of small kernels.
    torch._foreach_mul_(teacher_tensors, momentum)
    torch._foreach_add_(teacher_tensors, student_tensors, alpha=1.0 - momentum)


def teacher_retention(momentum_at: Callable[[int], float], steps: int) -> float:
    """Fraction of its initial weights the teacher still holds after ``steps`` EMA updates: the product of the
    momenta (each update keeps ``momentum`` of the teacher)."""
    log_kept = 0.0
    for step in range(steps):
        momentum = momentum_at(step)
        if momentum <= 0.0:
            return 0.0
        log_kept += math.log(momentum)
    return math.exp(log_kept)


# The teacher should move at least one EMA time constant away from its random start (keep < 1/e of it).
STILL_TEACHER = math.exp(-1.0)
_TARGET = math.exp(-3.0)  # what the suggested fix aims for: 5% of the initial weights left


def short_schedule_warning(
    momentum_teacher: float, total_steps: int, run_steps: int, steps_per_epoch: int
) -> str | None:
    """A warning with the fix when the teacher would barely move from its random initialisation during the run.

    Args:
        momentum_teacher: Start of the cosine momentum (it ends at 1 at ``total_steps``).
        total_steps: Steps the schedule spans.
        run_steps: Steps this run takes (``run.max_steps`` may cut the schedule).
        steps_per_epoch: To express the fix in epochs.
    """
    from trainkit.schedules import cosine_between

    def momentum(m0: float):
        return lambda step: cosine_between(step, total_steps, m0, 1.0)

    kept = teacher_retention(momentum(momentum_teacher), run_steps)
    if kept < STILL_TEACHER:
        return None
    low, high = 0.0, momentum_teacher  # the largest start momentum that moves the teacher enough in this run
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if teacher_retention(momentum(middle), run_steps) <= _TARGET else (low, middle)
    # Over a full cosine the summed (1 - momentum) is about (1 - m0) * steps / 2.
    needed = math.ceil(2 * -math.log(_TARGET) / max(1.0 - momentum_teacher, 1e-12))
    epochs = math.ceil(needed / steps_per_epoch)
    return (
        f"the teacher keeps {kept:.0%} of its random initial weights by the end of this run ({run_steps} steps, "
        f"momentum {momentum_teacher} -> 1), so it hardly moves and its features (the k-NN) stay near those of a "
        f"random network. Lower dino.momentum_teacher to {low:.4g} (or less), or train longer: about {epochs} "
        f"epochs ({needed} steps) at this momentum"
    )
