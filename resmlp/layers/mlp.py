"""The channel MLP: the cross-channel sublayer of a ResMLP block (paper Eq. 3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ChannelMLP(nn.Module):
    """``fc2(act(fc1(x)))`` applied to every token independently: d -> hidden -> d.

    ``act_layer`` defaults to the exact (erf) GELU of the released models. ``drop`` is dropout after each linear
    layer, built by ``drop_layer`` (``nn.Dropout``; the fairseq plugin passes its own dropout module).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        drop: float = 0.0,
        *,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop_layer: Callable[[float], nn.Module] = nn.Dropout,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = drop_layer(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
