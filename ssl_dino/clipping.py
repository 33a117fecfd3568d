"""DINO's per-parameter gradient clipping (facebookresearch/dino ``utils.clip_gradients``).

Each parameter tensor's gradient is clipped to norm ``clip`` on its own, unlike ``clip_grad_norm_`` (and
``accelerator.clip_grad_norm_``), which clips the global norm of all gradients together. DINO clips at 3.0.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def clip_gradients(model: nn.Module, clip: float) -> torch.Tensor:
    """Scale every gradient whose L2 norm exceeds ``clip`` down to norm ``clip``; return the norms before clipping.

    The result has one entry per parameter that has a gradient, in ``named_parameters`` order (DINO returns a
    list of floats; a tensor avoids a device sync per parameter). Under mixed precision, unscale the gradients
    first (``accelerator.unscale_gradients()``), as the reference does with its GradScaler. ``clip <= 0`` only
    measures.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch._foreach_norm(grads, 2)
    if clip > 0:
        # clip / (norm + 1e-6) as the reference; factors above 1 would enlarge small gradients, so cap at 1.
        factors = [torch.clamp(clip / (norm + 1e-6), max=1.0) for norm in norms]
        torch._foreach_mul_(grads, factors)
    return torch.stack([norm.float() for norm in norms])
