"""A ResMLP block with its Affine and LayerScale parameters folded into the linear layers, run token-major.

The algebra (x is one sample's (N, C) tokens; a, b the pre-Affine, g the LayerScale, A and d the token-mixing
matrix and bias, W1, c1, W2, c2 the channel MLP):

- channel sublayer ``z = y + g * (W2 gelu(W1 (a y + b) + c1) + c2)`` is exactly
  ``z = y + W2' gelu(W1' y + c1') + c2'`` with ``W1' = W1 diag(a)``, ``c1' = c1 + W1 b``, ``W2' = diag(g) W2`` and
  ``c2' = g c2``.
- token sublayer ``y = x + g * (A (a x + b) + d)`` mixes tokens, not channels, so a and g cannot enter A. But A
  commutes with per-channel factors, which gives ``y = x + [A | d] @ [x * (g a) + 1 (g b)^T ; g^T]``: one scaled
  copy of x with one extra row, then one matrix product whose output is added to the residual by the GEMM itself.
  The extra column d of the matrix and the extra row g of its right operand carry the per-token bias d g^T.

Activations are token-major, (N, B, C), so the token mixing is a single (N, N+1) @ (N+1, B*C) product and the
channel MLP a single (N*B, C) @ (C, 4C) product, with no transpose anywhere.

The fold functions are plain differentiable torch expressions: the trainable model calls them at every step (the
gradients reach the original parameters through autograd), ``resmlp.fuse`` calls them once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn

from ..layers.residual import PreAffineResidual
from .gemm import autocast_disabled, left_matmul, linear, mlp_residual_, needs_grad


class TokenMixingWeights(NamedTuple):
    """Folded token-mixing sublayer: ``y = x + matrix @ [x * scale + shift ; gain]``."""

    scale: torch.Tensor  # (C,) LayerScale * Affine alpha
    shift: torch.Tensor  # (C,) LayerScale * Affine beta
    gain: torch.Tensor | None  # (C,) LayerScale, the extra row that carries the token bias; None without a bias
    matrix: torch.Tensor  # (N, N + 1) the mixing matrix with the token bias as last column, or (N, N)


class ChannelMLPWeights(NamedTuple):
    """Folded channel sublayer: ``y + fc2(gelu(fc1(y)))``."""

    fc1_weight: torch.Tensor  # (H, C)
    fc1_bias: torch.Tensor  # (H,)
    fc2_weight: torch.Tensor  # (C, H)
    fc2_bias: torch.Tensor  # (C,)


def _fp32_folding(fn):
    # Folding runs in the parameters' precision even inside autocast (W1 @ b would otherwise run in bf16); the
    # folded weights are cast to the compute dtype afterwards, like any weight under autocast.
    @functools.wraps(fn)
    def wrapper(sublayer):
        with autocast_disabled(sublayer.norm.alpha):
            return fn(sublayer)

    return wrapper


@_fp32_folding
def fold_token_mixing(sublayer: PreAffineResidual) -> TokenMixingWeights:
    """Fold the Affine and LayerScale of a token-mixing sublayer (``block.token_mix``)."""
    gamma = sublayer.ls.gamma
    matrix = sublayer.op.mixing_matrix()
    bias = sublayer.op.bias
    gain = None
    if bias is not None:
        matrix = torch.cat([matrix, bias[:, None]], dim=1)
        gain = gamma
    return TokenMixingWeights(gamma * sublayer.norm.alpha, gamma * sublayer.norm.beta, gain, matrix)


@_fp32_folding
def fold_channel_mlp(sublayer: PreAffineResidual) -> ChannelMLPWeights:
    """Fold the Affine and LayerScale of a channel-MLP sublayer (``block.channel_mix``) into fc1 and fc2."""
    fc1, fc2 = sublayer.op.fc1, sublayer.op.fc2
    alpha, beta, gamma = sublayer.norm.alpha, sublayer.norm.beta, sublayer.ls.gamma
    return ChannelMLPWeights(
        fc1.weight * alpha, torch.addmv(fc1.bias, fc1.weight, beta), fc2.weight * gamma[:, None], fc2.bias * gamma
    )


def fold_classifier(norm: nn.Module, head: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the final Affine into the classifier: ``head(norm(p)) = (W diag(alpha)) p + (b + W beta)``."""
    with autocast_disabled(head.weight):
        return head.weight * norm.alpha, torch.addmv(head.bias, head.weight, norm.beta)


def token_mixing(
    x: torch.Tensor,
    w: TokenMixingWeights,
    keep: torch.Tensor | None = None,
    *,
    workspace: torch.Tensor | None = None,
) -> torch.Tensor:
    """The token-mixing sublayer on token-major ``x`` (N, B, C); ``keep`` is a (1, B, 1) drop-path mask or None.

    ``workspace`` is an optional (N + 1, B, C) buffer that inference may reuse for the scaled copy of ``x``, so a
    stack of blocks allocates it once (a fresh multi-megabyte buffer per block costs page faults).
    """
    tokens, batch, chans = x.shape
    scale, shift, gain, matrix = (None if t is None else t.to(x.dtype) for t in w)
    extra = 0 if gain is None else 1
    if needs_grad(x, scale, matrix) or torch.compiler.is_compiling():
        v = torch.addcmul(shift, x, scale)
        if gain is not None:
            v = torch.cat([v, gain.expand(1, batch, chans)])
    else:
        # Inference writes the scaled copy and the bias row straight into one buffer: no concatenation copy.
        shape = (tokens + extra, batch, chans)
        usable = workspace is not None and workspace.shape == shape and workspace.dtype == x.dtype
        v = workspace if usable else x.new_empty(shape)
        torch.addcmul(shift, x, scale, out=v[:tokens])
        if gain is not None:
            v[tokens] = gain
    v = v.view(tokens + extra, batch * chans)
    if keep is None:
        return left_matmul(matrix, v, residual=x.view(tokens, batch * chans)).view(tokens, batch, chans)
    return torch.addcmul(x, left_matmul(matrix, v).view(tokens, batch, chans), keep)


def token_mixing_workspace(x: torch.Tensor) -> torch.Tensor | None:
    """A reusable ``workspace`` for ``token_mixing`` on tokens like ``x`` (N, B, C), or None when training."""
    if needs_grad(x) or torch.compiler.is_compiling():
        return None
    tokens, batch, chans = x.shape
    return x.new_empty(tokens + 1, batch, chans)


def channel_mlp(
    x: torch.Tensor,
    w: ChannelMLPWeights,
    keep: torch.Tensor | None = None,
    dropout: nn.Module | None = None,
    *,
    inplace: bool = False,
) -> torch.Tensor:
    """The channel-MLP sublayer on token-major ``x`` (N, B, C); ``dropout`` acts after each linear (training).

    ``inplace=True`` lets inference (no gradients, no drop path, no dropout) overwrite ``x`` with the result,
    which runs the MLP in cache-sized chunks of rows (``gemm.mlp_residual_``).
    """
    tokens, batch, chans = x.shape
    fc1_weight, fc1_bias, fc2_weight, fc2_bias = (t.to(x.dtype) for t in w)
    rows = x.view(tokens * batch, chans)
    plain_inference = keep is None and dropout is None and not torch.compiler.is_compiling()
    if inplace and plain_inference and not needs_grad(x, *w):
        return mlp_residual_(rows, fc1_weight, fc1_bias, fc2_weight, fc2_bias).view(tokens, batch, chans)
    hidden = linear(rows, fc1_weight, fc1_bias, gelu=True)
    if keep is None and dropout is None:
        return linear(hidden, fc2_weight, fc2_bias, residual=rows).view(tokens, batch, chans)
    if dropout is not None:
        # Dropout commutes with the folded per-channel LayerScale, so dropping after fc2' is dropping after fc2.
        hidden = dropout(hidden)
    branch = linear(hidden, fc2_weight, fc2_bias)
    if dropout is not None:
        branch = dropout(branch)
    branch = branch.view(tokens, batch, chans)
    return x + branch if keep is None else torch.addcmul(x, branch, keep)
