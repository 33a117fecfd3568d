"""Class-MLP pooling: the paper's alternative to average pooling (Table 3, Table D.3), derived here.

The paper describes it as CaiT's class-attention stage with the attention replaced by linear layers, the patch
embeddings frozen, at +2.3-2.4M parameters and unchanged FLOPs for S12/S24/S36 (17.7 / 32.4 / 47.1M). Our design,
which gives exactly those counts (17.72 / 32.39 / 47.06M): a learned class token and two blocks, as CaiT's two
class-attention layers; in each, the class token is updated twice, the patches never:

    cls = cls + ls1 * pool(norm1([cls; patches]))    pool: one linear map over the N + 1 tokens (weights N + 1,
                                                      and a bias), in place of the attention's weighted average
    cls = cls + ls2 * MLP(norm2(cls))                 the d -> 4d -> d channel MLP, on the class token only

so each block costs 8d^2 + 11d + N + 2 parameters and almost no multiply-adds (one token).
"""

from __future__ import annotations

import torch
from torch import nn

from .layer_scale import LayerScale
from .mlp import ChannelMLP


class ClassMLPBlock(nn.Module):
    """One class-MLP block: updates the class token (B, 1, C) from itself and the frozen patches (B, N, C)."""

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        hidden_dim: int,
        *,
        layerscale_init: float,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.pool = nn.Linear(num_tokens + 1, 1)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = norm_layer(dim)
        self.mlp = ChannelMLP(dim, hidden_dim, act_layer=act_layer)
        self.ls2 = LayerScale(dim, layerscale_init)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        tokens = self.norm1(torch.cat([cls, patches], dim=1))
        cls = cls + self.ls1(self.pool(tokens.transpose(1, 2)).transpose(1, 2))
        return cls + self.ls2(self.mlp(self.norm2(cls)))


class ClassMLPPooling(nn.Module):
    """Tokens (B, N, C) -> pooled features (B, C) through a class token and ``depth`` class-MLP blocks."""

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        hidden_dim: int,
        *,
        layerscale_init: float,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module] = nn.GELU,
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(
            [
                ClassMLPBlock(
                    dim,
                    num_tokens,
                    hidden_dim,
                    layerscale_init=layerscale_init,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                )  # fmt: skip
                for _ in range(depth)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        for block in self.blocks:
            cls = block(cls, x)
        return cls[:, 0]
