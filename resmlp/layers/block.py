"""One ResMLP residual block: token mixing, then channel mixing, each a pre-Affine residual sublayer."""

from __future__ import annotations

import torch
from torch import nn

from .cross_patch import CrossPatchLinear
from .mlp import ChannelMLP
from .residual import PreAffineResidual


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
    ) -> None:
        super().__init__()
        self.token_mix = PreAffineResidual(
            dim, CrossPatchLinear(num_tokens, causal=causal), layerscale_init=layerscale_init, drop_path=drop_path
        )
        self.channel_mix = PreAffineResidual(
            dim,
            ChannelMLP(dim, hidden_dim, drop, act_layer=act_layer),
            layerscale_init=layerscale_init,
            drop_path=drop_path,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mix(self.token_mix(x))
