"""The token-mixing operation of a block, by name: the released N x N linear layer and the paper's ablations."""

from __future__ import annotations

from torch import nn

from .cross_patch import CrossPatchLinear
from .grid_conv import GRID_CONVS, GridConv
from .token_mlp import TokenMLP

TOKEN_MIXERS = ("linear", "mlp", *GRID_CONVS, "none")


def token_mixer(
    kind: str,
    dim: int,
    grid_size: tuple[int, int],
    *,
    mlp_ratio: float = 4.0,
    act_layer: type[nn.Module] = nn.GELU,
    causal: bool = False,
) -> nn.Module | None:
    """The operation mixing tokens (B, N, C) -> (B, N, C); None for ``none`` (a bag of patches: no sublayer)."""
    num_tokens = grid_size[0] * grid_size[1]
    if kind == "linear":
        return CrossPatchLinear(num_tokens, causal=causal)
    if causal:
        raise ValueError(f"token_mixer {kind!r} has no causal form; use 'linear'")
    if kind == "mlp":
        return TokenMLP(num_tokens, mlp_ratio, act_layer)
    if kind in GRID_CONVS:
        return GridConv(dim, grid_size, kind)
    if kind == "none":
        return None
    raise ValueError(f"unknown token_mixer {kind!r}; choose one of {TOKEN_MIXERS}")
