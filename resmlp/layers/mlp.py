"""The channel MLP: the cross-channel sublayer of a ResMLP block (paper Eq. 3)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelMLP(nn.Module):
    """``fc2(GELU(fc1(x)))`` applied to every token independently: d -> hidden -> d.

    GELU is the exact (erf) form, as in the released models. ``drop`` is dropout after each linear layer.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
