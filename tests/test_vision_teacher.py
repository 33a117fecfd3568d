"""The frozen distillation teacher: timm models with local weights and resmlp checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import resmlp
from resmlp.checkpoint import CheckpointError
from vision.teacher import FrozenTeacher, load_teacher


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10).eval()
    path = tmp_path_factory.mktemp("teacher") / "test_resnet.pth"
    torch.save({"model": model.state_dict(), "epoch": 3}, path)  # DeiT-style wrapper
    return path, model


def test_timm_teacher_loads_wrapped_weights_and_is_frozen(timm_weights) -> None:
    path, reference = timm_weights
    teacher = load_teacher("test_resnet", path, num_classes=10)
    assert isinstance(teacher, FrozenTeacher)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()  # a training loop calling .train() must not wake up BatchNorm or dropout
    assert not teacher.training and not teacher.model.training
    images = torch.randn(2, 3, 32, 32)
    out = teacher(images)
    assert torch.allclose(out, reference(images), atol=1e-6)
    assert not out.requires_grad


def test_timm_teacher_accepts_state_dict_and_module_prefixes(timm_weights, tmp_path: Path) -> None:
    _, reference = timm_weights
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    teacher = load_teacher("test_resnet", path, num_classes=10, source="timm")
    images = torch.randn(1, 3, 32, 32)
    assert torch.allclose(teacher(images), reference(images), atol=1e-6)


def test_timm_teacher_with_other_classes_is_a_clear_error(timm_weights) -> None:
    path, _ = timm_weights
    with pytest.raises(CheckpointError, match=r"fc.weight: file \(10, .*\) vs model \(7, .*must predict"):
        load_teacher("test_resnet", path, num_classes=7)


def test_resmlp_teacher_from_our_checkpoint(tmp_path: Path) -> None:
    model = resmlp.create_model("resmlp_tiny").eval()
    path = resmlp.save_model(model, tmp_path / "tiny.pth")
    teacher = load_teacher("resmlp_tiny", path, num_classes=10)
    images = torch.randn(2, 3, 16, 16)
    assert torch.allclose(teacher(images), model(images), atol=1e-6)
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(CheckpointError, match="predicts 10 classes, the student 4"):
        load_teacher("resmlp_tiny", path, num_classes=4)


def test_missing_teacher_weights_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="teacher weights not found: .*nothing is downloaded"):
        load_teacher("regnety_160", tmp_path / "regnety_160.pth", num_classes=1000)
    junk = tmp_path / "junk.pth"
    torch.save({"model": {}}, junk)
    with pytest.raises(ValueError, match="not_a_model"):
        load_teacher("not_a_model", junk, num_classes=10)
