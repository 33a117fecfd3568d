"""Run a ``resmlp.ResMLP`` at another token grid through token-mixing matrices derived from its own.

A ResMLP block mixes tokens with an N x N matrix A (plus a bias of N) learned for one grid (gh, gw). For a local
crop with grid (lh, lw) this module derives an (lh*lw) x (lh*lw) matrix from A, differentiably, so the gradients
of the local views reach the global parameters (there are no separate local parameters):

* ``interpolate``: view A as a 4-D (gh, gw, gh, gw) kernel and resample both the target and the source grids to
  (lh, lw) bilinearly (antialiased when shrinking). Each local source token stands for (gh*gw)/(lh*lw) global ones,
  so the result is multiplied by that ratio: a matrix that averages all tokens still averages all tokens. The
  bias is resampled as a (gh, gw) image.
* ``subgrid``: take the rows and columns of A (and entries of the bias) of the centred (lh, lw) window of the
  global grid; a token keeps the neighbourhood weights it has in the global model.

``features_at_grid`` is the functional forward of the whole model at the input's own resolution; it reuses the
model's modules (Affine, LayerScale, drop path, channel MLP) and only replaces the token mixing, so ``resmlp/``
needs no change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DERIVE_MODES = ("interpolate", "subgrid")


def derive_token_mixing(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    global_grid: tuple[int, int],
    local_grid: tuple[int, int],
    mode: str = "interpolate",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (lh*lw) x (lh*lw) token-mixing matrix and bias for ``local_grid`` derived from the global ones."""
    gh, gw = global_grid
    lh, lw = local_grid
    if weight.shape != (gh * gw, gh * gw):
        raise ValueError(f"weight must be ({gh * gw}, {gh * gw}) for grid {global_grid}, got {tuple(weight.shape)}")
    if (lh, lw) == (gh, gw):
        return weight, bias
    if mode == "subgrid":
        if lh > gh or lw > gw:
            raise ValueError(f"a sub-grid must fit in the global grid: local {local_grid} > global {global_grid}")
        top, left = (gh - lh) // 2, (gw - lw) // 2
        rows = torch.arange(top, top + lh, device=weight.device)
        cols = torch.arange(left, left + lw, device=weight.device)
        index = (rows[:, None] * gw + cols[None, :]).reshape(-1)
        return weight[index][:, index], None if bias is None else bias[index]
    if mode != "interpolate":
        raise ValueError(f"unknown derive mode {mode!r}; choose one of {DERIVE_MODES}")
    shrink = lh < gh or lw < gw
    # Sources first: (gh*gw targets, 1, gh, gw) -> (gh*gw, lh*lw); then targets: (lh*lw, 1, gh, gw) -> (lh*lw, lh*lw).
    sources = _resample(weight.reshape(gh * gw, 1, gh, gw), (lh, lw), shrink).reshape(gh * gw, lh * lw)
    targets = _resample(sources.t().reshape(lh * lw, 1, gh, gw), (lh, lw), shrink).reshape(lh * lw, lh * lw)
    local_weight = targets.t() * ((gh * gw) / (lh * lw))
    local_bias = None if bias is None else _resample(bias.reshape(1, 1, gh, gw), (lh, lw), shrink).reshape(-1)
    return local_weight, local_bias


def _resample(x: torch.Tensor, size: tuple[int, int], shrink: bool) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def check_derivable(model: nn.Module) -> None:
    """Refuse a ResMLP variant whose token mixing or pooling is tied to its grid in a way not derived here."""
    config = model.config
    if config.token_mixer != "linear" or config.global_pool != "avg":
        raise ValueError(
            f"the derived policies resample the N x N token-mixing matrix and average-pool; this backbone has "
            f"token_mixer={config.token_mixer!r}, global_pool={config.global_pool!r}; use crops.policy none or resize"
        )


def features_at_grid(model: nn.Module, images: torch.Tensor, mode: str = "interpolate") -> torch.Tensor:
    """Pooled features (B, D) of a ``resmlp.ResMLP`` for images of any size divisible into whole patches.

    At the model's own size this equals ``model.forward_head(model.forward_features(x), pre_logits=True)``.
    """
    check_derivable(model)
    embed = model.patch_embed
    patch = embed.patch_size
    height, width = images.shape[-2:]
    if images.ndim != 4 or height % patch or width % patch:
        raise ValueError(
            f"images must be (B, C, H, W) with H and W multiples of the patch size {patch}, got {tuple(images.shape)}"
        )
    global_grid = tuple(embed.grid_size)
    local_grid = (height // patch, width // patch)
    # The patch projection is a strided convolution, valid at any size; row-major token order as PatchEmbed.
    tokens = F.conv2d(images, embed.proj.weight, embed.proj.bias, stride=patch).flatten(2).transpose(1, 2)
    for block in model.blocks:
        mixing = block.token_mix
        weight, bias = derive_token_mixing(mixing.op.weight, mixing.op.bias, global_grid, local_grid, mode)
        if getattr(mixing.op, "causal", False):
            weight = weight.tril()
        mixed = torch.matmul(weight, mixing.norm(tokens))  # (L, L) @ (B, L, D) -> (B, L, D)
        if bias is not None:
            mixed = mixed + bias[:, None]
        tokens = tokens + mixing.drop_path(mixing.ls(mixed))
        tokens = block.channel_mix(tokens)
    return model.norm(tokens).mean(dim=1)
