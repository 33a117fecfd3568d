"""The normalisations of the paper's ablation (Table 3): Affine (the released models), LayerNorm and BatchNorm."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .affine import Affine


class TokenBatchNorm(nn.Module):
    """Batch norm of each channel over the batch and the tokens: (B, N, C) in, the same shape out.

    A ``BatchNorm1d`` inside (``.bn``), so ``SyncBatchNorm.convert_sync_batchnorm`` and our cross-process batch norm
    find it.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "affine": Affine,
    "layernorm": nn.LayerNorm,
    "batchnorm": TokenBatchNorm,
}


def norm_layer(name: str) -> Callable[[int], nn.Module]:
    """The constructor (taking the channel count) of the normalisation called ``name``."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {tuple(NORMS)}")
    return NORMS[name]
