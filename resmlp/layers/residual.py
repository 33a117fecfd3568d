"""The pre-Affine residual sublayer shared by every ResMLP block (and the seq2seq layers)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .affine import Affine
from .drop_path import DropPath
from .layer_scale import LayerScale


class PreAffineResidual(nn.Module):
    """``x + drop_path(layer_scale(op(affine(x))))``: the paper's Eq. 2 and 3 around any operation.

    ``norm_layer`` builds the pre-normalisation (Affine in the paper; LayerNorm or BatchNorm in its ablation).
    Attributes ``norm`` (the pre-normalising Affine), ``op`` (token mixing or channel MLP) and ``ls`` (LayerScale)
    name the three parameterised parts; ``drop_path`` is stochastic depth on the whole branch.
    """

    def __init__(
        self,
        dim: int,
        op: nn.Module,
        *,
        layerscale_init: float,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = Affine,
    ) -> None:
        super().__init__()
        self.norm = norm_layer(dim)
        self.op = op
        self.ls = LayerScale(dim, layerscale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.ls(self.op(self.norm(x))))
