"""Test-only ResMLP in the official deit module layout, written from the spec (resmlp_spec.md §1.2-1.10).

It exists so the tests can check that a state dict in the official key layout (``patch_embed.proj``,
``blocks[i].norm1/attn/gamma_1/norm2/mlp.fc1/fc2/gamma_2``, ``norm``, ``head``) gives the same logits in this
library as in a model built the way the deit repo builds it: token mixing as transpose -> ``nn.Linear(N, N)`` ->
transpose back, patch embedding as a ``Conv2d`` whose map is flattened row-major. No deit code is copied; it is
deliberately plain and slow so that it shares nothing with ``resmlp.layers``.
"""

from __future__ import annotations

import torch
from torch import nn


class RefAffine(nn.Module):
    """``alpha * x + beta`` with official (d,) parameter shapes."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.beta


class RefMlp(nn.Module):
    """fc1 -> exact GELU -> fc2, the cross-channel sublayer."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RefBlock(nn.Module):
    """One residual block with the official attribute names; ``attn`` is the cross-patch Linear(N, N)."""

    def __init__(self, dim: int, num_patches: int, hidden: int, init_scale: float) -> None:
        super().__init__()
        self.norm1 = RefAffine(dim)
        self.attn = nn.Linear(num_patches, num_patches)
        self.norm2 = RefAffine(dim)
        self.mlp = RefMlp(dim, hidden)
        self.gamma_1 = nn.Parameter(init_scale * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, d) -> (B, d, N) so the Linear acts along tokens, then back.
        x = x + self.gamma_1 * self.attn(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class RefPatchEmbed(nn.Module):
    """Conv2d(kernel = stride = p), flattened over the grid in row-major order: (B, C, H, W) -> (B, N, d)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class RefResMLP(nn.Module):
    """The deit-layout ResMLP: patch_embed -> blocks -> norm -> token mean -> head."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_classes: int = 1000,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.patch_embed = RefPatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.blocks = nn.ModuleList([RefBlock(embed_dim, num_patches, 4 * embed_dim, init_scale) for _ in range(depth)])
        self.norm = RefAffine(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> pooled (B, d) features."""
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@torch.no_grad()
def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter distinct random values, so a swapped alpha/beta or gamma_1/gamma_2 changes logits.

    Init values (alpha = 1, beta = 0, gamma = constant, zero biases) would hide such layout bugs. Scales are kept
    small enough that a 12-block forward stays well conditioned.
    """
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator)
        if name.endswith("alpha"):
            param.copy_(1.0 + 0.2 * noise)
        elif name.endswith(("gamma", "gamma_1", "gamma_2", "ls1", "ls2")):
            param.copy_(0.1 + 0.05 * noise)
        elif param.ndim == 2 and name.split(".")[-2] in ("attn", "linear_tokens", "op"):
            param.copy_(0.05 * noise)
        else:
            param.copy_(0.05 * noise if param.ndim < 2 else noise / param[0].numel() ** 0.5)
    return model
