"""The CPU fast path of ResMLP, fenced off from the readable model.

- ``folding``: the algebra that folds every Affine and LayerScale into the neighbouring linear layer;
- ``gemm``: the oneDNN matrix products with bias, GELU and residual add fused, and their backward passes;
- ``token_major``: the model's forward pass on token-major (N, B, C) tokens from the modules' own parameters;
- ``fused``: ``fuse(model)``, an inference copy with the folded weights computed once;
- ``dispatch``: when the fast path serves (``serves``) and the switch (``set_enabled``, ``disabled``,
  ``RESMLP_FAST_PATH=0``).

``ResMLP.forward_features`` is the one place that chooses between this path and the reference formulation.
"""

from __future__ import annotations

import torch
from torch import nn

from . import token_major
from .dispatch import disabled, is_enabled, released_architecture, serves, set_enabled
from .fused import FusedResMLP, fuse


def forward_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model.forward_features(x)`` computed on the fast path: tokens (B, N, D) after the final Affine."""
    tokens = token_major.blocks(model.blocks, token_major.patch_embed(model.patch_embed, x))
    return model.norm(tokens).transpose(0, 1).contiguous()


def forward_intermediates(
    model: nn.Module, x: torch.Tensor, wanted: list[int], blocks: int, norm: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The fast path of ``model.forward_intermediates``: the final tokens (B, N, D) after the final Affine, computed
    from the first ``blocks`` blocks, and the (B, N, D) output of each block in ``wanted`` (normed when ``norm``)."""
    tokens = token_major.patch_embed(model.patch_embed, x)
    workspace = token_major.token_mixing_workspace(tokens)
    taken = []
    for i, blk in enumerate(model.blocks[:blocks]):
        tokens = token_major.block(blk, tokens, workspace)
        if i in wanted:
            taken.append((model.norm(tokens) if norm else tokens).transpose(0, 1).contiguous())
    return model.norm(tokens).transpose(0, 1).contiguous(), taken


__all__ = [
    "FusedResMLP",
    "disabled",
    "forward_features",
    "forward_intermediates",
    "fuse",
    "is_enabled",
    "released_architecture",
    "serves",
    "set_enabled",
]
