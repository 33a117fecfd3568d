"""Optimiser from the recipe: timm's LAMB/AdamW/SGD on two parameter groups, weight decay only on matrices.

ResMLP's Affine (alpha, beta), LayerScale (gamma) and every bias are 1-D; like DeiT/timm we give them no weight
decay, which would otherwise pull Affine's alpha and LayerScale's gamma towards zero. The decayed group comes first,
so a per-step weight-decay schedule (DINO) sets ``optimizer.param_groups[0]["weight_decay"]``::

    total_batch = cfg.run.batch_size * accelerator.num_processes * cfg.run.grad_accum_steps
    optimizer = build_optimizer(model, cfg.optim, total_batch)   # lr = cfg.optim.scaled_lr(total_batch)
    ema = build_ema(model, cfg.optim.ema_decay)                  # None when ema_decay is null
"""

from __future__ import annotations

import torch
from torch import nn

from .sections import OptimConfig

# Our names -> timm's. timm's "sgd" is Nesterov; "momentum" is classical heavy-ball SGD, the ResNet-style recipe.
_TIMM_NAMES = {"lamb": "lamb", "adamw": "adamw", "sgd": "momentum"}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weight matrices with ``weight_decay``, then biases and all 1-D parameters with none.

    Frozen parameters (``requires_grad=False``) are left out.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, optim: OptimConfig, total_batch: int) -> torch.optim.Optimizer:
    """timm optimiser named by ``optim.name`` at the scaled peak lr ``optim.scaled_lr(total_batch)``."""
    from timm.optim import create_optimizer_v2

    kwargs: dict = {}
    if optim.name in ("lamb", "adamw"):
        kwargs = {"betas": tuple(optim.betas), "eps": optim.eps}
    return create_optimizer_v2(
        param_groups(model, optim.weight_decay),
        opt=_TIMM_NAMES[optim.name],
        lr=optim.scaled_lr(total_batch),
        momentum=optim.momentum,
        **kwargs,
    )


def build_ema(model: nn.Module, decay: float | None) -> nn.Module | None:
    """timm ``ModelEmaV3`` of the (unwrapped) model, or None when ``decay`` is None.

    Update it after each optimiser step with ``ema.update(model, step=step)`` and register it with
    ``CheckpointManager(..., extra_objects=[ema])`` so resumes restore it.
    """
    if decay is None:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay)
