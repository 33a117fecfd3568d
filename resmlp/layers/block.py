"""One ResMLP residual block: token mixing, then channel mixing, each a pre-Affine residual sublayer."""

from __future__ import annotations

import torch
from torch import nn

from .cross_patch import CrossPatchLinear
from .folding import channel_mlp, fold_channel_mlp, fold_token_mixing, token_mixing
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
    ) -> None:
        super().__init__()
        self.token_mix = PreAffineResidual(
            dim, CrossPatchLinear(num_tokens, causal=causal), layerscale_init=layerscale_init, drop_path=drop_path
        )
        self.channel_mix = PreAffineResidual(
            dim, ChannelMLP(dim, hidden_dim, drop), layerscale_init=layerscale_init, drop_path=drop_path
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mix(self.token_mix(x))

    def forward_token_major(self, x: torch.Tensor, workspace: torch.Tensor | None = None) -> torch.Tensor:
        """The same block on token-major tokens (N, B, C), in the folded form of ``resmlp.layers.folding``.

        Mathematically equal to ``forward`` (and tested to be), but it runs the Affine and LayerScale inside the
        linear layers' weights, so each sublayer is one matrix product plus at most one elementwise pass. This is
        the training and inference path of ``ResMLP``; the weights are re-folded on every call, so gradients
        reach the usual parameters. ``workspace``: see ``folding.token_mixing``.
        """
        keep = self.token_mix.drop_path.keep_mask(x, batch_dim=1)
        x = token_mixing(x, fold_token_mixing(self.token_mix), keep, workspace=workspace)
        keep = self.channel_mix.drop_path.keep_mask(x, batch_dim=1)
        drop = self.channel_mix.op.drop
        dropout = drop if self.training and isinstance(drop, nn.Dropout) else None
        # x is the fresh output of token_mixing, so inference may overwrite it.
        return channel_mlp(x, fold_channel_mlp(self.channel_mix), keep, dropout, inplace=True)
