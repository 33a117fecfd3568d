"""Supervised and distillation losses on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vision.config import AugmentConfig, DistillConfig
from vision.losses import DistillationLoss, SupervisedLoss, build_loss


class FixedLogits(nn.Module):
    """A 'teacher' that returns the same logits for every image."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))
        self.seen: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen = images
        return self.logits.expand(len(images), -1)


def test_supervised_hard_labels_with_and_without_smoothing() -> None:
    logits = torch.zeros(2, 4)  # uniform prediction: cross-entropy ln 4 whatever the label
    targets = torch.tensor([1, 3])
    assert SupervisedLoss()(logits, targets)["loss"].item() == pytest.approx(math.log(4))
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p = (3/4, 1/4)
    plain = -math.log(0.75)
    smoothed = 0.9 * -math.log(0.75) + 0.1 * (-(math.log(0.75) + math.log(0.25)) / 2)
    assert SupervisedLoss()(logits, torch.tensor([0]))["loss"].item() == pytest.approx(plain)
    assert SupervisedLoss(0.1)(logits, torch.tensor([0]))["loss"].item() == pytest.approx(smoothed)


def test_supervised_soft_targets_from_mixup() -> None:
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p = (3/4, 1/4)
    soft = torch.tensor([[0.5, 0.5]])
    out = SupervisedLoss(0.1)(logits, soft)  # smoothing is not applied again to soft targets
    assert out["loss"].item() == pytest.approx(-(0.5 * math.log(0.75) + 0.5 * math.log(0.25)))
    assert set(out["logs"]) == {"loss_base"} and not out["logs"]["loss_base"].requires_grad


def test_hard_distillation_value() -> None:
    teacher = FixedLogits([0.0, 5.0, 1.0])  # the teacher always says class 1
    loss = DistillationLoss(SupervisedLoss(), teacher, kind="hard", alpha=0.5)
    student = torch.tensor([[math.log(2.0), math.log(1.0), math.log(1.0)]], requires_grad=True)  # p = (.5, .25, .25)
    images = torch.randn(1, 3, 4, 4)
    out = loss(student, torch.tensor([0]), images)
    expected = 0.5 * -math.log(0.5) + 0.5 * -math.log(0.25)  # labels say 0, teacher says 1
    assert out["loss"].item() == pytest.approx(expected)
    assert out["logs"]["loss_distill"].item() == pytest.approx(-math.log(0.25))
    assert out["logs"]["teacher_agreement"].item() == 0.0
    assert teacher.seen is images  # the teacher sees exactly the student's (possibly mixed) images
    out["loss"].backward()
    assert student.grad is not None


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_soft_distillation_is_batchmean_kl_times_tau_squared(tau: float) -> None:
    # Teacher logits (0, tau * ln 2, 0) give p_t = (1/4, 1/2, 1/4) at temperature tau; the student is uniform.
    teacher = FixedLogits([0.0, tau * math.log(2.0), 0.0])
    loss = DistillationLoss(SupervisedLoss(), teacher, kind="soft", alpha=1.0, tau=tau)
    student = torch.zeros(2, 3)
    kl = 0.25 * math.log(0.25 * 3) + 0.5 * math.log(0.5 * 3) + 0.25 * math.log(0.25 * 3)
    out = loss(student, torch.tensor([0, 1]), torch.zeros(2, 3, 4, 4))
    assert out["loss"].item() == pytest.approx(kl * tau * tau)  # per sample, not divided by the 3 classes


def test_distillation_mixes_base_and_teacher_terms_with_alpha() -> None:
    teacher = FixedLogits([3.0, 0.0])
    student, targets = torch.tensor([[0.0, 0.0]]), torch.tensor([1])
    images = torch.zeros(1, 1, 2, 2)
    for alpha in (0.0, 0.3, 1.0):
        out = DistillationLoss(SupervisedLoss(), teacher, kind="hard", alpha=alpha)(student, targets, images)
        assert out["loss"].item() == pytest.approx(math.log(2))  # both terms are ln 2 for a uniform student
    student = torch.tensor([[math.log(3.0), 0.0]])  # p = (3/4, 1/4): base -ln(1/4), distill -ln(3/4)
    out = DistillationLoss(SupervisedLoss(), teacher, kind="hard", alpha=0.3)(student, targets, images)
    assert out["loss"].item() == pytest.approx(0.7 * -math.log(0.25) + 0.3 * -math.log(0.75))


def test_teacher_with_other_classes_is_refused() -> None:
    loss = DistillationLoss(SupervisedLoss(), FixedLogits([0.0, 1.0, 2.0]), kind="hard")
    with pytest.raises(ValueError, match="must predict the student's classes"):
        loss(torch.zeros(1, 5), torch.tensor([0]), torch.zeros(1, 3, 2, 2))


def test_build_loss_from_the_recipe() -> None:
    assert isinstance(build_loss(AugmentConfig(), DistillConfig()), SupervisedLoss)
    distill = DistillConfig(kind="soft", teacher="resmlp_tiny", teacher_weights="t.pth", alpha=0.2, tau=3.0)
    built = build_loss(AugmentConfig(), distill, FixedLogits([0.0]))
    assert isinstance(built, DistillationLoss) and (built.kind, built.alpha, built.tau) == ("soft", 0.2, 3.0)
    with pytest.raises(ValueError, match="needs a teacher"):
        build_loss(AugmentConfig(), distill)
    with pytest.raises(ValueError, match="teacher_weights"):
        DistillConfig(kind="hard", teacher="regnety_160")
