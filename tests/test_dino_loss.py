"""DINOLoss: a hand-computed value, the view pairs, centring in one process (and across two), diagnostics."""

import math
import multiprocessing as mp
import socket

import pytest
import torch
import torch.distributed as dist

from ssl_dino.diagnostics import collapse_diagnostics, collapse_warning
from ssl_dino.loss import DINOLoss


def cross_entropy(target: list[float], logits: list[float]) -> float:
    """-sum_i target_i * log softmax(logits)_i, written out."""
    log_norm = math.log(sum(math.exp(v) for v in logits))
    return -sum(t * (v - log_norm) for t, v in zip(target, logits))


def test_hand_computed_value_two_global_one_local():
    # K = 2, batch 1, views [global 0, global 1, local]; centre 0, teacher temperature 0.1, student 0.1.
    teacher = torch.tensor([[0.2, 0.0], [0.0, 0.2]])
    student = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    q = math.exp(2) / (math.exp(2) + 1)  # softmax([2, 0])[0]
    t0, t1 = [q, 1 - q], [1 - q, q]
    s0, s1, s2 = [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]  # student logits / 0.1
    # Pairs with different views only: (t0, s1), (t0, s2), (t1, s0), (t1, s2).
    expected = (cross_entropy(t0, s1) + cross_entropy(t0, s2) + cross_entropy(t1, s0) + cross_entropy(t1, s2)) / 4
    loss = DINOLoss(2)(student, teacher, teacher_temp=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


class ReferenceDINOLoss(torch.nn.Module):
    """facebookresearch/dino main_dino.DINOLoss, verbatim but for the all_reduce (one process: the identity)."""

    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs):
        super().__init__()
        self.student_temp = 0.1
        self.center_momentum = 0.9
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temp_schedule = torch.cat(
            (
                torch.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
                torch.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp,
            )
        )

    def forward(self, student_output, teacher_output, epoch):
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = torch.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * torch.nn.functional.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        return total_loss


def test_same_values_and_centre_as_the_reference_over_several_steps():
    torch.manual_seed(0)
    reference = ReferenceDINOLoss(
        32, ncrops=6, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=3, nepochs=5
    )
    ours = DINOLoss(32)
    for epoch in range(5):
        student = torch.randn(6 * 4, 32, requires_grad=True)
        teacher = torch.randn(2 * 4, 32)
        expected = reference(student, teacher, epoch)
        value = ours(student, teacher, teacher_temp=float(reference.teacher_temp_schedule[epoch]))
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(ours.center, reference.center)
        (grad,) = torch.autograd.grad(value, student)
        (expected_grad,) = torch.autograd.grad(expected, student)
        torch.testing.assert_close(grad, expected_grad)


def test_same_view_pairs_are_skipped():
    # Teacher view 0 says class 0, view 1 says class 1. Student view 0 is only compared with teacher view 1, so its
    # gradient pushes it towards class 1; were (t0, s0) included too, the two pulls would cancel.
    teacher = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    student = torch.zeros(2, 2, requires_grad=True)
    DINOLoss(2)(student, teacher, teacher_temp=0.1).backward()
    assert student.grad[0, 1] < 0 < student.grad[0, 0]
    assert student.grad[1, 0] < 0 < student.grad[1, 1]


def test_center_is_applied_before_and_updated_after():
    torch.manual_seed(0)
    loss_fn = DINOLoss(4)
    teacher1, student1 = torch.randn(6, 4), torch.randn(9, 4)
    loss_fn(student1, teacher1, 0.04)
    expected_center = 0.1 * teacher1.mean(0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, expected_center)

    teacher2, student2 = torch.randn(6, 4), torch.randn(9, 4)
    value = loss_fn(student2, teacher2, 0.04)
    reference = DINOLoss(4)
    reference.center = expected_center.clone()  # same centre, computed independently
    torch.testing.assert_close(value, reference(student2, teacher2, 0.04))
    torch.testing.assert_close(loss_fn.center, 0.9 * expected_center + 0.1 * teacher2.mean(0, keepdim=True))


def _center_worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    rows = 4 if rank == 0 else 6  # uneven batches: the global mean must weight every row equally
    loss_fn = DINOLoss(3)
    loss_fn(torch.randn(rows, 3), torch.full((rows, 3), float(rank + 1)), 0.1)
    # A list, not a tensor: a tensor travels as a shared file descriptor that dies with this process.
    queue.put((rank, loss_fn.center.tolist()))
    dist.destroy_process_group()


def test_center_update_reduces_across_two_processes():
    # spawn, not fork: a forked child can deadlock on the parent's thread pools.
    ctx = mp.get_context("spawn")
    with socket.socket() as probe:  # a port that is free now, rather than a fixed one other tests may hold
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    queue = ctx.Queue()
    workers = [ctx.Process(target=_center_worker, args=(rank, port, queue)) for rank in (0, 1)]
    for worker in workers:
        worker.start()
    centers = dict(queue.get(timeout=240) for _ in workers)
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    global_mean = (4 * 1.0 + 6 * 2.0) / 10
    for rank in (0, 1):
        torch.testing.assert_close(torch.tensor(centers[rank]), torch.full((1, 3), 0.1 * global_mean))


def test_bad_shapes_say_what_is_expected():
    loss_fn = DINOLoss(4)
    with pytest.raises(ValueError, match="global views"):
        loss_fn(torch.randn(6, 4), torch.randn(3, 4), 0.04)
    with pytest.raises(ValueError, match=r"\(views \* batch, 4\)"):
        loss_fn(torch.randn(6, 5), torch.randn(4, 5), 0.04)
    with pytest.raises(ValueError, match="teacher_temp"):
        loss_fn(torch.randn(6, 4), torch.randn(4, 4), 0.0)


def test_diagnostics_of_a_healthy_step():
    torch.manual_seed(0)
    loss_fn = DINOLoss(8)
    # Every sample sharply prefers its own prototype: confident, diverse teacher.
    teacher = 0.5 * torch.eye(8).repeat(2, 1)
    student = torch.randn(24, 8)
    loss = loss_fn(student, teacher, 0.04)
    stats, warning = loss_fn.diagnostics(student, teacher, 0.04, loss)
    assert warning is None
    assert stats["teacher_entropy"] < 0.1 * math.log(8)
    assert stats["teacher_marginal_entropy"] == pytest.approx(math.log(8), rel=1e-3)
    # Cross-entropy = entropy + KL, over the same pairs.
    assert stats["loss"] == pytest.approx(stats["teacher_entropy"] + stats["student_teacher_kl"], rel=1e-4)


def test_diagnostics_kl_is_zero_when_student_matches_teacher():
    teacher = torch.randn(4, 6)
    targets = torch.softmax(teacher / 0.05, dim=-1)
    student = torch.log(targets) * 0.1  # log-probabilities times the student temperature
    student = torch.cat([student.chunk(2)[1], student.chunk(2)[0]])  # view 0 of the student = teacher view 1
    stats, _ = collapse_diagnostics(student, teacher, center=torch.zeros(1, 6), teacher_temp=0.05)
    assert stats["student_teacher_kl"] == pytest.approx(0.0, abs=1e-5)


def test_uniform_collapse_warns():
    teacher = torch.zeros(8, 16)  # every prototype equal: the teacher is flat
    student = torch.zeros(8, 16)
    stats, warning = collapse_diagnostics(student, teacher, center=torch.zeros(1, 16), teacher_temp=0.04)
    assert stats["teacher_entropy"] == pytest.approx(math.log(16))
    assert stats["loss"] == pytest.approx(math.log(16))
    assert warning is not None and "uniform collapse" in warning and "one-dimension" not in warning


def test_loss_near_ln_k_with_a_sharper_teacher_is_not_a_collapse():
    # Loss = entropy + KL: the loss may sit near ln K while the teacher is clearly sharper than flat (a student still
    # learning); only the teacher's own entropy near ln K is a uniform collapse.
    torch.manual_seed(0)
    teacher = 0.1 * torch.randn(8, 256)
    stats, _ = collapse_diagnostics(torch.zeros(8, 256), teacher, center=torch.zeros(1, 256), teacher_temp=0.04)
    assert stats["teacher_entropy"] < 0.97 * math.log(256)
    stats["loss"] = 0.995 * math.log(256)
    assert collapse_warning(stats) is None
    stats["teacher_entropy"] = 0.99 * math.log(256)
    assert "uniform collapse" in collapse_warning(stats)


def test_one_dimension_collapse_warns():
    teacher = torch.zeros(8, 16)
    teacher[:, 3] = 1.0  # every sample picks prototype 3
    stats, warning = collapse_diagnostics(torch.randn(8, 16), teacher, center=torch.zeros(1, 16), teacher_temp=0.04)
    assert stats["teacher_top_share"] > 0.99
    assert warning is not None and "one-dimension collapse" in warning and "uniform" not in warning
