"""Affine: the per-channel scale and shift that replaces every LayerNorm in ResMLP (paper Eq. 1)."""

from __future__ import annotations

import torch
from torch import nn


class Affine(nn.Module):
    """``Aff(x) = alpha * x + beta`` over the last (channel) dimension.

    Initialised to the identity (alpha = 1, beta = 0). It uses no batch or token statistics, so it costs nothing
    at inference once folded into the neighbouring linear layer (see ``resmlp.fuse``). Parameters have the
    official deit shape ``(dim,)``; timm stores them as ``(1, 1, dim)`` and the checkpoint code converts.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel instead of a multiply and an add.
        return torch.addcmul(self.beta, self.alpha, x)

    def extra_repr(self) -> str:
        return f"dim={self.alpha.numel()}"
