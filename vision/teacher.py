"""The frozen distillation teacher: a timm model with a local weights file, or one of our ResMLP checkpoints.

The teacher is never passed to ``accelerator.prepare``: it has no trainable parameters, DDP would only add a
useless gradient all-reduce hook, and FSDP2 accepts one model per ``prepare`` call (anchors §C). The caller moves
it to ``accelerator.device`` (``teacher.to(device)``); every process holds a full copy and runs it on its own
share of the batch. Weights are read with ``weights_only=True`` (``resmlp.checkpoint.safe_load``); nothing is
downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

import resmlp
from resmlp.checkpoint import CheckpointError, safe_load
from resmlp.cli import UserError

# Wrappers that training scripts put around a state dict (timm's train.py, DeiT's main.py, plain exports).
_WRAPPERS = ("model", "state_dict", "state_dict_ema", "model_ema")


class MissingWeightsError(UserError, FileNotFoundError):
    """The teacher's weights file does not exist (nothing is ever downloaded)."""


class UnknownTeacherError(UserError, ValueError):
    """``distill.teacher`` names no timm model."""


class FrozenTeacher(nn.Module):
    """A model that stays in eval mode, has no trainable parameters and never records gradients.

    ``train()`` is a no-op, so a training loop that calls ``.train()`` on a parent module cannot switch the
    teacher's dropout or drop path back on.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def _timm_state_dict(path: Path) -> dict[str, Tensor]:
    obj = safe_load(path)
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (looked at the top level and under {_WRAPPERS})")
    for prefix in ("module.", "_orig_mod."):  # DDP and torch.compile prefixes
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _load_timm_teacher(name: str, weights: Path, num_classes: int, **kwargs) -> nn.Module:
    import timm

    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise UnknownTeacherError(f"distill.teacher {name!r}: {err}; see timm.list_models() for names") from None
    state_dict = _timm_state_dict(weights)
    # timm's own converter for the model family (e.g. official DeiT/FB layouts), when the family has one.
    remap = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if remap is not None:
        state_dict = remap(state_dict, model)
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in state_dict][:5]
    problems += [f"unexpected {k}" for k in state_dict if k not in own][:5]
    problems += [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ][:5]
    if problems:
        raise CheckpointError(
            f"teacher weights {weights} do not fit timm {name!r} with {num_classes} classes: {'; '.join(problems)} "
            "(the teacher must predict the student's classes; is it the right model name?)"
        )
    model.load_state_dict(state_dict)
    return model


def load_teacher(
    name: str,
    weights: str | os.PathLike,
    *,
    num_classes: int,
    source: Literal["auto", "timm", "resmlp"] = "auto",
    **model_kwargs,
) -> FrozenTeacher:
    """Build a frozen teacher on the CPU; move it to the device yourself and keep it out of ``prepare``.

    Args:
        name: A timm model name (``regnety_160``, the paper's teacher) or a resmlp preset (``resmlp_s24``).
        weights: Local weights file. timm: a state dict, raw or under ``model`` / ``state_dict``; resmlp: any
            checkpoint ``resmlp.create_model`` reads.
        num_classes: The student's classes; the teacher's head must have as many.
        source: ``auto`` takes resmlp for a resmlp preset name and timm otherwise.
        **model_kwargs: Extra keyword arguments for the model constructor (``img_size``, ``in_chans`` ...).
    """
    if source not in ("auto", "timm", "resmlp"):
        raise ValueError(f"source must be 'auto', 'timm' or 'resmlp', got {source!r}")
    path = Path(weights)
    if not str(weights) or not path.is_file():
        raise MissingWeightsError(
            f"teacher weights not found: {str(weights) or '(empty)'}; distill.teacher_weights must name a local "
            "file (nothing is downloaded)"
        )
    if source == "auto":
        source = "resmlp" if name in resmlp.list_models() else "timm"
    if source == "resmlp":
        model = resmlp.create_model(name, checkpoint=path, **model_kwargs)
        if model.config.num_classes != num_classes:
            raise CheckpointError(
                f"teacher {path} predicts {model.config.num_classes} classes, the student {num_classes}; a teacher "
                "must predict the student's classes"
            )
    else:
        model = _load_timm_teacher(name, path, num_classes, **model_kwargs)
    return FrozenTeacher(model)
