"""Convolutions over the patch grid: the paper's "patch communication: conv 3x3 / depth-wise / separable" ablations."""

from __future__ import annotations

import torch
from torch import nn

GRID_CONVS = ("conv3x3", "dwconv3x3", "separable")


class GridConv(nn.Module):
    """A 3x3 convolution of the tokens laid out on their (rows, cols) grid: (B, N, C) -> (B, N, C).

    ``conv3x3``: full C -> C; ``dwconv3x3``: depth-wise (one 3x3 filter per channel); ``separable``: depth-wise
    then point-wise (1x1, C -> C). Zero padding keeps the grid.
    """

    def __init__(self, dim: int, grid_size: tuple[int, int], kind: str = "conv3x3") -> None:
        super().__init__()
        if kind not in GRID_CONVS:
            raise ValueError(f"unknown grid convolution {kind!r}; choose one of {GRID_CONVS}")
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.kind = kind
        groups = 1 if kind == "conv3x3" else dim
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=groups)
        self.pointwise = nn.Conv2d(dim, dim, 1) if kind == "separable" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, chans = x.shape
        rows, cols = self.grid_size
        grid = x.transpose(1, 2).reshape(batch, chans, rows, cols)
        return self.pointwise(self.conv(grid)).flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, grid_size={self.grid_size}"
