"""Training losses as objects returning ``{"loss": tensor, "logs": {name: detached tensor}}``.

``SupervisedLoss`` takes class indices (with label smoothing) or the soft targets of Mixup/CutMix (already
smoothed by ``timm.data.Mixup``). ``DistillationLoss`` adds DeiT-style distillation from a frozen teacher
(Touvron et al., arXiv 2012.12877; the ResMLP paper, arXiv 2105.03404, uses hard distillation from RegNetY-16GF).

How the single head takes both terms. DeiT's ``DistillationLoss`` needs a second, distillation head (its
distillation token); ResMLP has one head, and the paper does not say how it was wired (resmlp_spec §2.2). Here
the one head's logits receive both terms:

    loss = (1 - alpha) * base(logits, targets) + alpha * distill(logits, teacher(images))

With ``hard`` distillation, ``distill`` is the cross-entropy to the teacher's argmax (no label smoothing) and
``alpha = 0.5``, DeiT's default: the head is pulled half to the (mixed, smoothed) labels, half to the teacher's
decision. With ``soft`` distillation it is the KL divergence at temperature ``tau``, scaled by ``tau**2``.

The teacher sees the same images as the student, mixed by Mixup/CutMix when those are on, as in DeiT.

Normalisation of the soft term: DeiT sums the KL and divides by ``logits.numel()`` (batch x classes), a
"legacy" choice its code comments on (deit#116, deit#134). We use ``batchmean``, the mathematically correct
per-sample KL: it is ``num_classes`` times larger than DeiT's value, so DeiT's soft-distillation ``alpha`` and
``tau`` do not carry over unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from torch import Tensor, nn

from .config import AugmentConfig, DistillConfig


class SupervisedLoss:
    """Cross-entropy to hard labels (with label smoothing) or to soft targets from Mixup/CutMix.

    Args:
        label_smoothing: Applied to hard labels only; soft targets come smoothed from ``timm.data.Mixup``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self._soft = SoftTargetCrossEntropy()

    def base(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The mean supervised cross-entropy of a batch."""
        if targets.is_floating_point():  # soft targets (B, C)
            if targets.shape != logits.shape:
                raise ValueError(f"soft targets of shape {tuple(targets.shape)} for logits {tuple(logits.shape)}")
            return self._soft(logits, targets)
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def __call__(self, logits: Tensor, targets: Tensor, images: Tensor | None = None) -> dict:
        loss = self.base(logits, targets)
        return {"loss": loss, "logs": {"loss_base": loss.detach()}}


class DistillationLoss:
    """``(1 - alpha) * supervised + alpha * distillation`` on the student's single head.

    Args:
        base: The supervised loss.
        teacher: Frozen teacher on the same device as the images (see ``vision.teacher.load_teacher``).
        kind: ``hard`` or ``soft``.
        alpha: Weight of the distillation term.
        tau: Temperature of soft distillation.
    """

    def __init__(
        self,
        base: SupervisedLoss,
        teacher: nn.Module,
        *,
        kind: Literal["hard", "soft"] = "hard",
        alpha: float = 0.5,
        tau: float = 1.0,
    ) -> None:
        if kind not in ("hard", "soft"):
            raise ValueError(f"distillation kind must be 'hard' or 'soft', got {kind!r}")
        if not 0.0 <= alpha <= 1.0 or tau <= 0:
            raise ValueError(f"need 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")
        self.base, self.teacher, self.kind, self.alpha, self.tau = base, teacher, kind, alpha, tau

    def distill(self, logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The distillation term alone, for student and teacher logits of the same images."""
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"teacher logits {tuple(teacher_logits.shape)} do not match the student's {tuple(logits.shape)}; "
                "the teacher must predict the student's classes"
            )
        if self.kind == "hard":
            return F.cross_entropy(logits, teacher_logits.argmax(dim=-1))
        t = self.tau
        student = F.log_softmax(logits.float() / t, dim=-1)  # fp32 even under autocast: KL of small differences
        teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
        return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)

    def __call__(self, logits: Tensor, targets: Tensor, images: Tensor) -> dict:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        base = self.base.base(logits, targets)
        distill = self.distill(logits, teacher_logits)
        loss = (1.0 - self.alpha) * base + self.alpha * distill
        agreement = (logits.detach().argmax(-1) == teacher_logits.argmax(-1)).float().mean() * 100.0
        logs = {"loss_base": base.detach(), "loss_distill": distill.detach(), "teacher_agreement": agreement}
        return {"loss": loss, "logs": logs}


def build_loss(
    augment: AugmentConfig, distill: DistillConfig, teacher: nn.Module | None = None
) -> SupervisedLoss | DistillationLoss:
    """The training loss of a recipe: supervised, plus distillation when ``distill.kind`` is not ``none``.

    ``augment.label_smoothing`` smooths hard labels here; with Mixup/CutMix on, the targets arrive soft and
    already smoothed by ``timm.data.Mixup``, so it is not applied twice.
    """
    base = SupervisedLoss(augment.label_smoothing)
    if distill.kind == "none":
        return base
    if teacher is None:
        raise ValueError(f"distillation kind {distill.kind!r} needs a teacher (vision.teacher.load_teacher)")
    return DistillationLoss(base, teacher, kind=distill.kind, alpha=distill.alpha, tau=distill.tau)
