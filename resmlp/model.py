"""The ResMLP image classifier (Touvron et al., "ResMLP: Feedforward networks for image classification with
data-efficient training", arXiv 2105.03404).

patch embedding -> ``depth`` residual blocks -> Affine -> mean over tokens -> linear head. No attention, no
normalisation statistics, no positional embedding, no class token.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import ResMLPConfig
from .layers import Affine, PatchEmbed, ResMLPBlock
from .layers.folding import token_mixing_workspace


class ResMLP(nn.Module):
    """ResMLP built from a ``ResMLPConfig``, honouring timm's backbone contract.

    ``forward_features(x)`` returns the tokens ``(B, N, C)`` after the final Affine, ``forward_head(x,
    pre_logits)`` pools and classifies, ``reset_classifier`` swaps the head, ``num_features`` is the pooled
    width, and ``forward_intermediates`` returns every block's output.
    """

    def __init__(self, config: ResMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.num_features = self.embed_dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.image_hw, config.patch_size, config.in_chans, config.embed_dim)
        self.blocks = nn.Sequential(
            *[
                ResMLPBlock(
                    config.embed_dim,
                    config.num_patches,
                    config.hidden_dim,
                    layerscale_init=config.layerscale_init_value,
                    drop_path=rate,
                    drop=config.drop_rate,
                )
                for rate in config.block_drop_path_rates
            ]
        )
        self.norm = Affine(config.embed_dim)
        self.head = nn.Linear(config.embed_dim, config.num_classes) if config.num_classes > 0 else nn.Identity()
        self.apply(_init_linear)

    # ---- the timm backbone contract ----
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, N, D) after the final Affine."""
        return self.norm(self._blocks_token_major(x).transpose(0, 1).contiguous())

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, N, D) -> logits (B, classes), or the pooled (B, D) features when ``pre_logits``."""
        x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, classes); equal to ``forward_head(forward_features(x))``."""
        # Pool before the final Affine (it commutes with the mean), straight from the token-major layout.
        return self.head(self.norm(self._blocks_token_major(x).mean(dim=0)))

    def _blocks_token_major(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> token-major tokens (N, B, D) after the last block: the fast path (see ``layers.folding``)."""
        x = self.patch_embed.forward_token_major(x)
        workspace = token_mixing_workspace(x)
        for block in self.blocks:
            x = block.forward_token_major(x, workspace)
        return x

    def forward_intermediates(
        self, x: torch.Tensor, indices: list[int] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final features (B, N, D) and the output (B, N, D) of each block in ``indices`` (default: all)."""
        depth = len(self.blocks)
        wanted = set(range(depth)) if indices is None else {i % depth for i in indices}
        outputs = []
        x = self.patch_embed.forward_token_major(x)
        workspace = token_mixing_workspace(x)
        for i, block in enumerate(self.blocks):
            x = block.forward_token_major(x, workspace)
            if i in wanted:
                outputs.append(x.transpose(0, 1).contiguous())
        return self.norm(x.transpose(0, 1).contiguous()), outputs

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one of ``num_classes`` outputs (0: identity)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_linear)
        # Keep the stored config truthful for saving and export.
        self.config = dataclasses.replace(self.config, num_classes=num_classes)

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        """Name fragments of parameters that take no weight decay: Affine, LayerScale and biases (all 1-D)."""
        return {"alpha", "beta", "gamma", "bias"}


def _init_linear(module: nn.Module) -> None:
    """The official init: truncated normal std 0.02 on every Linear (head included), zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
