"""The ResMLP forward pass in the fast path's layout: tokens token-major (N, B, C), sublayers folded.

Each function computes exactly what the corresponding module of ``resmlp.layers`` computes on (B, N, C) tokens
(tested), from that module's own parameters: the weights are folded again on every call, so gradients reach the
usual parameters and the trainable model uses this path for training as well as inference.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import PatchEmbed, ResMLPBlock
from .folding import channel_mlp, fold_channel_mlp, fold_token_mixing, token_mixing, token_mixing_workspace

__all__ = ["block", "blocks", "patch_embed", "token_mixing_workspace"]
from .gemm import compute_dtype, linear


def patch_embed(embed: PatchEmbed, x: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) -> token-major tokens (N, B, D), written in that layout by one matrix product.

    The convolution with kernel = stride = p is a matrix product on the unfolded patches; ordering the patch rows
    token-major makes the product write the layout the blocks want, with no transpose.
    """
    embed.check_input(x)
    batch, chans, _, _ = x.shape
    rows, cols = embed.grid_size
    p = embed.patch_size
    dtype = compute_dtype(x)
    # (B, C, rows, p, cols, p) -> (rows, cols, B, C, p, p) -> (N * B, C*p*p): patch rows in token-major order.
    patches = x.to(dtype).reshape(batch, chans, rows, p, cols, p).permute(2, 4, 0, 1, 3, 5)
    patches = patches.reshape(rows * cols * batch, -1)
    weight = embed.proj.weight.reshape(embed.proj.out_channels, -1).to(dtype)
    bias = None if embed.proj.bias is None else embed.proj.bias.to(dtype)
    return linear(patches, weight, bias).view(rows * cols, batch, -1)


def block(blk: ResMLPBlock, x: torch.Tensor, workspace: torch.Tensor | None = None) -> torch.Tensor:
    """``ResMLPBlock.forward`` on token-major tokens (N, B, C): each sublayer is one matrix product plus at most one
    elementwise pass. ``workspace``: see ``folding.token_mixing``."""
    keep = blk.token_mix.drop_path.keep_mask(x, batch_dim=1)
    x = token_mixing(x, fold_token_mixing(blk.token_mix), keep, workspace=workspace)
    keep = blk.channel_mix.drop_path.keep_mask(x, batch_dim=1)
    drop = blk.channel_mix.op.drop
    dropout = drop if blk.training and isinstance(drop, nn.Dropout) else None
    # x is the fresh output of token_mixing, so inference may overwrite it.
    return channel_mlp(x, fold_channel_mlp(blk.channel_mix), keep, dropout, inplace=True)


def blocks(stack: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Every block of ``stack`` on token-major tokens, sharing one inference workspace."""
    workspace = token_mixing_workspace(x)
    for blk in stack:
        x = block(blk, x, workspace)
    return x
