"""EMA teacher update, per-parameter gradient clipping and the DINO schedules."""

import math

import pytest
import torch
from torch import nn

from ssl_dino.clipping import clip_gradients
from ssl_dino.head import DINOHead
from ssl_dino.schedules import DINOSchedule, teacher_temp_at
from ssl_dino.teacher import make_teacher, update_teacher


def test_make_teacher_is_a_frozen_eval_copy():
    student = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    teacher = make_teacher(student)
    assert not teacher.training and student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    assert teacher[0].weight.data_ptr() != student[0].weight.data_ptr()


def test_teacher_batch_norm_uses_batch_statistics():
    # The reference teacher normalises with its batch's statistics; running statistics would stay at (0, 1) since
    # the EMA averages parameters only, and a head with BN would then not normalise at all.
    torch.manual_seed(0)
    student = nn.Sequential(DINOHead(6, 10, use_bn=True, hidden_dim=8, bottleneck_dim=4), nn.Dropout(0.5))
    teacher = make_teacher(student)
    batch_norms = [m for m in teacher.modules() if isinstance(m, nn.BatchNorm1d)]
    assert batch_norms and all(m.training for m in batch_norms)
    assert not teacher[1].training  # everything else (dropout, stochastic depth) is in eval mode
    features = 50.0 + torch.randn(16, 6)  # a large shared offset: with running statistics it would pass through
    with torch.no_grad():
        normalised = teacher[0].mlp[:2](features)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(0, unbiased=False), torch.ones(8), atol=1e-2, rtol=0)


def test_update_teacher_is_the_ema_of_every_parameter():
    torch.manual_seed(0)
    student = DINOHead(6, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    teacher = make_teacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    before = {n: p.clone() for n, p in teacher.named_parameters()}
    update_teacher(student, teacher, 0.9)
    students = dict(student.named_parameters())
    for name, param in teacher.named_parameters():
        torch.testing.assert_close(param, 0.9 * before[name] + 0.1 * students[name].detach())
    assert len(before) == len(students) == 8  # the weight-norm gain and direction included
    update_teacher(student, teacher, 1.0)  # momentum 1: the end of the cosine schedule leaves the teacher as is
    update_teacher(student, teacher, 0.0)
    for name, param in teacher.named_parameters():
        torch.testing.assert_close(param, students[name].detach())


def test_update_teacher_refuses_mismatched_models():
    student = nn.Linear(3, 3)
    wrapped = nn.Sequential(student)  # names carry "0.", as a DDP wrapper's carry "module."
    with pytest.raises(ValueError, match="unwrap_model"):
        update_teacher(wrapped, make_teacher(student), 0.99)


def test_clip_gradients_clips_each_parameter_on_its_own():
    model = nn.Linear(4, 2)
    model.weight.grad = torch.full((2, 4), 3.0)  # norm 8.49: clipped to 3
    model.bias.grad = torch.tensor([1.0, 2.0])  # norm 2.24: left alone (a global-norm clip would shrink it)
    norms = clip_gradients(model, 3.0)
    torch.testing.assert_close(norms, torch.tensor([math.sqrt(72.0), math.sqrt(5.0)]))
    assert model.weight.grad.norm().item() == pytest.approx(3.0, rel=1e-5)
    torch.testing.assert_close(model.bias.grad, torch.tensor([1.0, 2.0]))
    # Direction kept.
    torch.testing.assert_close(model.weight.grad, torch.full((2, 4), 3.0 / math.sqrt(8.0)), rtol=1e-5, atol=0)


def test_clip_gradients_skips_parameters_without_grad():
    model = nn.Linear(4, 2)
    model.weight.grad = torch.ones(2, 4)
    assert clip_gradients(model, 0.0).shape == (1,)  # clip 0 only measures
    torch.testing.assert_close(model.weight.grad, torch.ones(2, 4))


def test_schedule_endpoints():
    schedule = DINOSchedule(epochs=10, steps_per_epoch=5, lr=1e-3, warmup_epochs=2)
    first, last = schedule.at(0), schedule.at(schedule.total_steps - 1)
    assert first["lr"] == 0.0 and schedule.lr_at(10) == pytest.approx(1e-3)
    assert last["lr"] == pytest.approx(1e-6)
    assert (first["weight_decay"], last["weight_decay"]) == (pytest.approx(0.04), pytest.approx(0.4))
    assert (first["teacher_momentum"], last["teacher_momentum"]) == (pytest.approx(0.996), pytest.approx(1.0))
    momenta = [schedule.teacher_momentum_at(s) for s in range(schedule.total_steps)]
    assert momenta == sorted(momenta)  # monotone towards 1
    # Half way through the cosine: the mean of the two ends.
    assert schedule.weight_decay_at(0) + schedule.weight_decay_at(49) == pytest.approx(0.44)


def test_teacher_temperature_warmup_per_epoch_and_per_iteration():
    per_epoch = [
        teacher_temp_at(s, steps_per_epoch=4, warmup_temp=0.04, final_temp=0.07, warmup_epochs=4) for s in range(24)
    ]
    # linspace(0.04, 0.07, 4) per epoch, as the reference, then 0.07.
    expected = [0.04, 0.05, 0.06, 0.07, 0.07, 0.07]
    assert per_epoch == pytest.approx([t for t in expected for _ in range(4)])
    per_step = [
        teacher_temp_at(s, steps_per_epoch=4, warmup_temp=0.04, final_temp=0.07, warmup_epochs=4, per_iteration=True)
        for s in range(24)
    ]
    assert per_step[0] == pytest.approx(0.04) and per_step[15] == pytest.approx(0.07)
    assert per_step[:16] == sorted(per_step[:16]) and len(set(per_step[:16])) == 16
    assert teacher_temp_at(100, steps_per_epoch=4) == 0.04  # the reference default: 0.04 throughout


def test_short_schedule_warning_says_how_much_of_the_random_teacher_is_left_and_the_fix():
    from ssl_dino.teacher import short_schedule_warning, teacher_retention
    from trainkit.schedules import cosine_between

    assert short_schedule_warning(0.996, 1100, 1100, 22) is None  # the digits recipe: 50 epochs of 22 steps
    warning = short_schedule_warning(0.996, 440, 440, 22)  # the same at 20 epochs
    assert "keeps 41% of its random initial weights" in warning and "dino.momentum_teacher to 0.9864" in warning
    fixed = teacher_retention(lambda step: cosine_between(step, 440, 0.9864, 1.0), 440)
    assert fixed <= 0.05  # the suggested momentum leaves at most e^-3 of the initialisation
    assert "keeps 100%" in short_schedule_warning(1.0, 100, 100, 10)  # a teacher that never moves
