"""``resmlp.fuse``: an inference copy of a ResMLP with every Affine and LayerScale folded into a linear layer.

ResMLP normalises with per-channel Affines instead of LayerNorm precisely so that they cost nothing at inference
(paper, section 2). Folding them (see ``resmlp.fast.folding`` for the algebra) leaves, per block, one token
matrix product with a per-token bias, and the channel MLP with rescaled weights; the final Affine folds into the
classifier. The channel MLP and the head fold exactly; the token-mixing sublayer folds with a per-token bias
(it cannot fold into the N x N matrix, deit#114). The folded weights are computed once here, in fp32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..layers.patch_embed import PatchEmbed
from . import dispatch, token_major
from .folding import (
    ChannelMLPWeights,
    TokenMixingWeights,
    channel_mlp,
    fold_channel_mlp,
    fold_classifier,
    fold_token_mixing,
    token_mixing,
    token_mixing_workspace,
)
from .gemm import compute_dtype, linear


class _CastCache(nn.Module):
    """Holds folded tensors as buffers and hands them out in a compute dtype, casting each dtype only once.

    The casts (for example the bf16 copies used under autocast) are cached per dtype and dropped whenever the
    module is moved, converted (``.to``, ``.cuda``, ``.half`` ...) or loaded, so they always match the buffers.
    """

    def __init__(self, names: tuple[str, ...], tensors: tuple[torch.Tensor | None, ...]) -> None:
        super().__init__()
        self._names = names
        for name, tensor in zip(names, tensors):
            self.register_buffer(name, None if tensor is None else tensor.detach().clone())
        self._casts: dict[torch.dtype, tuple] = {}

    def tensors(self, dtype: torch.dtype) -> tuple:
        stored = tuple(getattr(self, name) for name in self._names)
        if stored[0].dtype == dtype:
            return stored
        cached = self._casts.get(dtype)
        if cached is None:
            cached = tuple(None if t is None else t.to(dtype) for t in stored)
            if not torch.compiler.is_compiling():
                self._casts[dtype] = cached
        return cached

    def _apply(self, fn, recurse=True):
        self._casts = {}
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._casts = {}
        return super()._load_from_state_dict(*args, **kwargs)


class FusedBlock(nn.Module):
    """One ResMLP block in folded form; the tokens are token-major (N, B, C)."""

    def __init__(self, token: TokenMixingWeights, channel: ChannelMLPWeights) -> None:
        super().__init__()
        self.token_mix = _CastCache(TokenMixingWeights._fields, token)
        self.channel_mix = _CastCache(ChannelMLPWeights._fields, channel)

    def forward(self, x: torch.Tensor, workspace: torch.Tensor | None = None) -> torch.Tensor:
        x = token_mixing(x, TokenMixingWeights(*self.token_mix.tensors(x.dtype)), workspace=workspace)
        return channel_mlp(x, ChannelMLPWeights(*self.channel_mix.tensors(x.dtype)), inplace=True)


class FusedResMLP(nn.Module):
    """Inference-only ResMLP whose Affine and LayerScale parameters live inside its linear layers.

    Built by ``resmlp.fuse(model)``. It holds buffers, not parameters: it is a snapshot of the model at fusing
    time and is not trained. Under autocast it computes in the autocast dtype with weights cast once per dtype.
    ``forward``, ``forward_features`` and ``forward_head`` match the plain model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config
        self.num_classes = model.num_classes
        self.num_features = self.embed_dim = model.num_features
        embed = model.patch_embed
        self.patch_embed = PatchEmbed(embed.img_size, embed.patch_size, embed.in_chans, model.embed_dim)
        self.patch_embed.load_state_dict(embed.state_dict())
        self.patch_embed.requires_grad_(False)
        with torch.no_grad():
            self.blocks = nn.ModuleList(
                FusedBlock(fold_token_mixing(b.token_mix), fold_channel_mlp(b.channel_mix)) for b in model.blocks
            )
            # The final Affine goes into the head; without a head it stays as a per-channel scale and shift.
            self.norm = _CastCache(("alpha", "beta"), (model.norm.alpha, model.norm.beta))
            self.head = self.classifier = None
            if isinstance(model.head, nn.Linear):
                self.head = _CastCache(("weight", "bias"), fold_classifier(model.norm, model.head))
                # forward_head receives tokens that already went through the final Affine: it needs the original.
                self.classifier = _CastCache(("weight", "bias"), (model.head.weight, model.head.bias))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> token-major tokens (N, B, D) after the last block, before the final Affine."""
        x = token_major.patch_embed(self.patch_embed, x)
        workspace = token_mixing_workspace(x)
        for block in self.blocks:
            x = block(x, workspace)
        return x

    def _classify(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            alpha, beta = self.norm.tensors(pooled.dtype)
            return torch.addcmul(beta, alpha, pooled)
        weight, bias = self.head.tensors(pooled.dtype)
        return linear(pooled, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, classes), or pooled features when the model has no head."""
        return self._classify(self._tokens(x).mean(dim=0))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, N, D) after the final Affine, as ``ResMLP.forward_features``."""
        tokens = self._tokens(x).transpose(0, 1).contiguous()
        alpha, beta = self.norm.tensors(tokens.dtype)
        return torch.addcmul(beta, alpha, tokens)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, N, D) from ``forward_features`` -> logits, or the pooled (B, D) features."""
        pooled = x.mean(dim=1)
        if pre_logits or self.classifier is None:
            return pooled
        weight, bias = self.classifier.tensors(compute_dtype(pooled))
        return linear(pooled.to(weight.dtype), weight, bias)


def _variant(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    if config is None:
        return ""
    fields = ("token_mixer", "norm", "act", "global_pool")
    return " (" + ", ".join(f"{f}={getattr(config, f)!r}" for f in fields) + ")"


def fuse(model: nn.Module) -> FusedResMLP:
    """An inference copy of ``model`` with every Affine and LayerScale folded into the adjacent linear layer.

    The result matches ``model`` in eval mode (to about 1e-6 relative in fp32) and is faster: see
    docs/benchmarks.md. Folding is done in fp32 even for a bf16/fp16 model, then stored in the model's dtype.
    The copy does not follow later changes to ``model``; fuse again after training.
    """
    from ..model import ResMLP  # here, not at the top: the model imports this package for its fast path

    if not isinstance(model, ResMLP) or not dispatch.released_architecture(model) or model.global_pool != "avg":
        raise TypeError(
            f"fuse() takes a resmlp.ResMLP of the released architecture with average pooling, got "
            f"{type(model).__name__}{_variant(model)}; "
            "build it with resmlp.create_model(...) (unwrap DDP, torch.compile or EMA wrappers first)"
        )
    dtype = next(model.parameters()).dtype
    source = model
    if dtype in (torch.float16, torch.bfloat16):
        source = copy.deepcopy(model).float()
    fused = FusedResMLP(source).to(dtype)
    return fused.eval()
