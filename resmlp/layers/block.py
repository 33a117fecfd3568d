"""One ResMLP residual block: token mixing, then channel mixing, each a pre-Affine residual sublayer."""

from __future__ import annotations

import torch
from torch import nn

from .affine import Affine
from .mlp import ChannelMLP
from .residual import PreAffineResidual
from .token_mixers import token_mixer


class ResMLPBlock(nn.Module):
    """``x -> x + ls1 * A(aff1(x))`` (across patches), then ``x -> x + ls2 * MLP(aff2(x))`` (across channels).

    Args:
        dim: Channels d.
        num_tokens: Tokens N (side of the token-mixing matrix).
        hidden_dim: Channel-MLP hidden width (4 d in the paper).
        layerscale_init: LayerScale init of both sublayers.
        drop_path: Stochastic-depth rate of both sublayers.
        drop: Dropout inside the channel MLP.
        causal: Lower-triangular token mixing (for autoregressive use).
        act_layer: Activation of the channel MLP (exact GELU in the paper).
        norm_layer: Pre-normalisation of both sublayers (Affine in the paper).
        mixer: Token mixing, ``linear`` (the paper's N x N) or an ablation of ``layers.token_mixers``; ``none``
            drops the token-mixing sublayer (a bag of patches).
        grid_size: Token grid (rows, cols), needed by the convolution mixers; default: one row of N tokens.
        token_mlp_ratio: Expansion of the ``mlp`` mixer.
    """

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        hidden_dim: int,
        *,
        layerscale_init: float,
        drop_path: float = 0.0,
        drop: float = 0.0,
        causal: bool = False,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = Affine,
        mixer: str = "linear",
        grid_size: tuple[int, int] | None = None,
        token_mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        grid = grid_size if grid_size is not None else (1, num_tokens)
        op = token_mixer(mixer, dim, grid, mlp_ratio=token_mlp_ratio, act_layer=act_layer, causal=causal)
        sublayer = dict(layerscale_init=layerscale_init, drop_path=drop_path, norm_layer=norm_layer)
        self.token_mix = nn.Identity() if op is None else PreAffineResidual(dim, op, **sublayer)
        self.channel_mix = PreAffineResidual(dim, ChannelMLP(dim, hidden_dim, drop, act_layer=act_layer), **sublayer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mix(self.token_mix(x))
