"""The DINO teacher: an exponential moving average of the student, never trained by gradients.

Keep the teacher out of ``accelerator.prepare``: it has no optimiser and no gradients, so DDP would only add a
useless wrapper (the reference wraps it for SyncBatchNorm, which ResMLP does not have), FSDP2 accepts one model per
``prepare``, and every process updates its own copy from identical student weights, so the copies stay equal
without communication. Move it to ``accelerator.device`` yourself and update it from
``accelerator.unwrap_model(student)`` after each optimiser step (when ``accelerator.sync_gradients``).
"""

from __future__ import annotations

import copy

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
