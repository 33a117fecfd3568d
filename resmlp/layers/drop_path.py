"""Stochastic depth: drop a residual branch for whole samples during training."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Zero the branch for a random subset of samples and rescale the rest by 1 / keep_prob.

    Identity at eval time or when ``drop_prob`` is 0. Each call draws its own mask, so one instance may serve
    both sublayers of a block, as in the reference code.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def keep_mask(self, x: torch.Tensor, batch_dim: int = 0) -> torch.Tensor | None:
        """The rescaled per-sample mask for ``x`` whose samples lie along ``batch_dim``; None when it is the identity.

        The token-major fast path (samples along dim 1) multiplies its branch by this mask itself.
        """
        if self.drop_prob == 0.0 or not self.training:
            return None
        keep_prob = 1.0 - self.drop_prob
        # One Bernoulli draw per sample, broadcast over every other dimension.
        shape = [1] * x.ndim
        shape[batch_dim] = x.shape[batch_dim]
        return x.new_empty(shape).bernoulli_(keep_prob).div_(keep_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.keep_mask(x)
        return x if mask is None else x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:g}"
