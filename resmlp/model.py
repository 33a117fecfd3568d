"""The ResMLP image classifier (Touvron et al., "ResMLP: Feedforward networks for image classification with
data-efficient training", arXiv 2105.03404).

patch embedding -> ``depth`` residual blocks -> Affine -> mean over tokens -> linear head. No attention, no
normalisation statistics, no positional embedding, no class token.

This file is the reference formulation: what a reader, ``torch.jit``, ``torch.fx``, ``torch.export`` and ONNX see.
The CPU fast path (``resmlp.fast``: folded weights, token-major layout, oneDNN) computes the same function and is
chosen in one place, ``forward_features``; it steps aside by itself wherever it does not serve.
"""

import dataclasses
from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import fast
from .config import GLOBAL_POOLS, ResMLPConfig
from .intermediates import take_indices
from .layers import PatchEmbed, ResMLPBlock
from .layers.activations import activation
from .layers.class_mlp import ClassMLPPooling
from .layers.norms import norm_layer


class ResMLP(nn.Module):
    """ResMLP built from a ``ResMLPConfig``, with timm's model contract.

    ``forward_features(x)`` returns the tokens ``(B, N, C)`` after the final Affine, ``forward_head(x, pre_logits)``
    pools and classifies; ``forward_intermediates``, ``prune_intermediate_layers``, ``feature_info``,
    ``set_grad_checkpointing``, ``group_matcher``, ``no_weight_decay`` and ``reset_classifier`` behave as in timm.
    """

    def __init__(self, config: ResMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.global_pool = config.global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = config.embed_dim
        self.grad_checkpointing = False
        norm, act = norm_layer(config.norm), activation(config.act)
        self.patch_embed = PatchEmbed(config.image_hw, config.patch_size, config.in_chans, config.embed_dim)
        self.blocks = nn.Sequential(
            *[
                ResMLPBlock(
                    config.embed_dim,
                    config.num_patches,
                    config.hidden_dim,
                    layerscale_init=config.layerscale_init_value,
                    drop_path=rate,
                    drop=config.proj_drop_rate,
                    act_layer=act,
                    norm_layer=norm,
                    mixer=config.token_mixer,
                    grid_size=config.grid_size,
                    token_mlp_ratio=config.token_mlp_ratio,
                )
                for rate in config.block_drop_path_rates
            ]
        )
        self.norm = norm(config.embed_dim)
        # Class-MLP pooling (an ablation of the paper) has parameters; average pooling has none.
        self.pool = (
            ClassMLPPooling(
                config.embed_dim,
                config.num_patches,
                config.hidden_dim,
                layerscale_init=config.layerscale_init_value,
                norm_layer=norm,
                act_layer=act,
            )  # fmt: skip
            if config.global_pool == "class_mlp"
            else nn.Identity()
        )
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = nn.Linear(config.embed_dim, config.num_classes) if config.num_classes > 0 else nn.Identity()
        self.feature_info = [
            dict(num_chs=config.embed_dim, reduction=config.patch_size, module=f"blocks.{i}")
            for i in range(config.depth)
        ]
        self.apply(_init_linear)

    # ---- forward ----
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, N, D) after the final Affine: ``norm(blocks(patch_embed(x)))``."""
        if not torch.jit.is_scripting() and self._fast_path_serves(x):
            return self._fast_forward_features(x)
        x = self.patch_embed(x)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, N, D) -> logits (B, classes), or the pooled (B, D) features when ``pre_logits``."""
        if self.global_pool == "avg":
            x = x.mean(dim=1)
        elif self.global_pool == "class_mlp":
            x = self.pool(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, classes)."""
        return self.forward_head(self.forward_features(x))

    # ---- where the fast path is chosen: the decision is fast.serves, asked by the two forward passes it covers ----
    @torch.jit.unused
    def _fast_path_serves(self, x: torch.Tensor) -> bool:
        return fast.serves(self, x)

    @torch.jit.unused
    def _fast_forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return fast.forward_features(self, x)

    @torch.jit.unused
    def _fast_forward_intermediates(
        self, x: torch.Tensor, wanted: List[int], depth: int, norm: bool
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return fast.forward_intermediates(self, x, wanted, depth, norm)

    # ---- timm's feature API ----
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The output of the blocks in ``indices`` (timm's semantics), and the final features.

        Args:
            indices: None (every block), an int n (the last n blocks) or a list of block indices.
            norm: Apply the final Affine to each intermediate.
            stop_early: Stop after the last wanted block (the final features are then those of that block).
            output_fmt: ``NCHW`` (tokens laid out on the patch grid) or ``NLC`` (tokens as they are).
            intermediates_only: Return only the list of intermediates.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        wanted, last = take_indices(len(self.blocks), indices)
        batch = x.shape[0]
        rows, cols = self.patch_embed.grid_size
        depth = last + 1 if stop_early and not torch.jit.is_scripting() else len(self.blocks)
        if not torch.jit.is_scripting() and self._fast_path_serves(x):
            final, intermediates = self._fast_forward_intermediates(x, wanted, depth, norm)
        else:
            x = self.patch_embed(x)
            intermediates = []
            for i, block in enumerate(self.blocks[:depth]):
                x = block(x)
                if i in wanted:
                    intermediates.append(self.norm(x) if norm else x)
            final = self.norm(x)
        if output_fmt == "NCHW":
            intermediates = [y.reshape(batch, rows, cols, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if intermediates_only:
            return intermediates
        return final, intermediates

    def prune_intermediate_layers(
        self, indices: Union[int, List[int]] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the blocks after the last of ``indices`` (and the final Affine / head); returns the kept indices."""
        wanted, last = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: last + 1]
        self.feature_info = self.feature_info[: last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return wanted

    # ---- timm's training hooks ----
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations (the plain path runs)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise learning-rate decay: the stem, one group per block, the rest."""
        return dict(stem=r"^patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm|^pool", (99999,))])

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        """Names of the parameters that take no weight decay: Affine, LayerScale and biases (every 1-D one)."""
        return {name for name, p in self.named_parameters() if p.ndim <= 1}

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set:
        """Name fragments of parameters that take no weight decay: Affine, LayerScale and biases (all 1-D)."""
        return {"alpha", "beta", "gamma", "bias"}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the head with a fresh one of ``num_classes`` outputs (0: identity), on the model's device/dtype."""
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"unknown global_pool {global_pool!r}; choose one of {GLOBAL_POOLS}")
            if global_pool == "class_mlp" and isinstance(self.pool, nn.Identity):
                raise ValueError("this model has no Class-MLP pooling; build it with global_pool='class_mlp'")
            self.global_pool = global_pool
        self.num_classes = num_classes
        reference = self.patch_embed.proj.weight
        if num_classes > 0:
            self.head = nn.Linear(self.num_features, num_classes, device=reference.device, dtype=reference.dtype)
            _init_linear(self.head)
        else:
            self.head = nn.Identity()
        # Keep the stored config truthful for saving and export.
        self.config = dataclasses.replace(self.config, num_classes=num_classes, global_pool=self.global_pool)


def _init_linear(module: nn.Module) -> None:
    """The official init: truncated normal std 0.02 on every Linear (head included), zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
