"""The DINO projection head (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
arXiv 2104.14294), as in facebookresearch/dino ``vision_transformer.DINOHead``.

MLP (in -> hidden -> hidden -> bottleneck, GELU) -> L2 normalisation -> weight-normalised linear layer without
bias to ``out_dim`` prototypes. The last layer is the one DINO freezes during the first epoch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

# Substring of the parameter names of the last layer; DINO's freeze rule matches on it.
LAST_LAYER_NAME = "last_layer"


class DINOHead(nn.Module):
    """Projection head: ``nlayers`` linear layers with GELU, L2 normalisation, then a weight-normed prototype layer.

    Args:
        in_dim: Width of the backbone's pooled features (``num_features``).
        out_dim: Number of prototypes K (65536 in DINO).
        use_bn: Batch norm after each hidden linear layer (off in DINO's ViT runs).
        norm_last_layer: Fix the weight-norm gain g at 1, so every prototype has unit norm. DINO's default; off is
            less stable and is advised only for ViT-S.
        nlayers: Linear layers before the bottleneck (1 gives a single in -> bottleneck layer).
        hidden_dim: Width of the hidden layers.
        bottleneck_dim: Width before the L2 normalisation.

    The last layer is ``torch.nn.utils.parametrizations.weight_norm(Linear(bottleneck, out_dim, bias=False))``:
    its parameters are ``last_layer.parametrizations.weight.original0`` (g, shape (out_dim, 1)) and
    ``...original1`` (the direction v). State dicts of the reference code (``last_layer.weight_g`` /
    ``weight_v``) load as well.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        *,
        use_bn: bool = False,
        norm_last_layer: bool = True,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
    ) -> None:
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"nlayers must be at least 1, got {nlayers}")
        if min(in_dim, out_dim, hidden_dim, bottleneck_dim) <= 0:
            raise ValueError(
                f"head widths must be positive, got in_dim={in_dim}, out_dim={out_dim}, hidden_dim={hidden_dim}, "
                f"bottleneck_dim={bottleneck_dim}"
            )
        self.out_dim = out_dim
        self.norm_last_layer = norm_last_layer
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            # Same module order (and state-dict indices) as the reference: Linear, [BN], GELU, ..., Linear.
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            for width in [hidden_dim] * (nlayers - 2) + [bottleneck_dim]:
                layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                layers += [nn.GELU(), nn.Linear(hidden_dim, width)]
            self.mlp = nn.Sequential(*layers)
        # The reference initialises the MLP before the last layer exists, so the last layer keeps the default
        # Linear init for its direction v.
        self.apply(_init_trunc_normal)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        gain.requires_grad_(not norm_last_layer)
        self._register_load_state_dict_pre_hook(_rename_reference_weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, in_dim) -> prototype scores (B, out_dim)."""
        x = self.mlp(x)
        # eps as the reference (F.normalize default 1e-12): the bottleneck is never exactly zero in practice.
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


def cancel_last_layer_grads(model: nn.Module) -> int:
    """Drop the gradients of every parameter whose name contains ``last_layer``; returns how many were dropped.

    DINO freezes the prototypes during the first epoch (``freeze_last_layer=1``) because a randomly moving last
    layer early on makes training unstable. Call it after ``backward`` and before ``optimizer.step()`` while
    ``epoch < freeze_last_layer``. Setting ``grad`` to None (not zero) makes the optimiser skip the parameter
    entirely, weight decay and momentum included, exactly as the reference. Works on a DDP-wrapped model too.
    """
    dropped = 0
    for name, param in model.named_parameters():
        if LAST_LAYER_NAME in name and param.grad is not None:
            param.grad = None
            dropped += 1
    return dropped


def _init_trunc_normal(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _rename_reference_weight_norm(state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
    """Map the reference's old-style weight norm keys (``weight_g``/``weight_v``) to the parametrization's."""
    for old, new in (("weight_g", "original0"), ("weight_v", "original1")):
        key = f"{prefix}last_layer.{old}"
        if key in state_dict:
            state_dict[f"{prefix}last_layer.parametrizations.weight.{new}"] = state_dict.pop(key)
