"""Patch embedding: a linear map applied to each non-overlapping p x p patch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gemm import compute_dtype, linear


class PatchEmbed(nn.Module):
    """Cut an image into p x p patches and project each to ``embed_dim`` channels: (B, C, H, W) -> (B, N, D).

    Tokens come out in row-major grid order (index ``row * grid_width + col``), as in the official code. The
    weight is stored as the official ``Conv2d(kernel=stride=p)`` (``proj.weight`` of shape (D, C, p, p)), but the
    forward pass is one matrix product on the unfolded patches, which writes the (B, N, D) token layout
    directly instead of a (B, D, H', W') map that must then be transposed.
    """

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = tuple(img_size)
        self.patch_size = patch_size
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        # Default PyTorch conv init, as the official model (which never re-initialises the patch projection).
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the expected size when ``x`` does not fit this model's patch grid."""
        expected = (self.in_chans, *self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(in_chans x height x width), got {tuple(x.shape)}; resize or crop the input to "
                f"{expected[1]}x{expected[2]}, or build the model with img_size={self.img_size} changed to match"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        batch, chans, _, _ = x.shape
        rows, cols = self.grid_size
        p = self.patch_size
        # (B, C, rows, p, cols, p) -> (B, rows, cols, C, p, p) -> (B, N, C*p*p): the conv's receptive fields.
        patches = x.reshape(batch, chans, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, -1)
        return F.linear(patches, self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)

    def forward_token_major(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> token-major tokens (N, B, D), written in that layout by the one matrix product."""
        self.check_input(x)
        batch, chans, _, _ = x.shape
        rows, cols = self.grid_size
        p = self.patch_size
        dtype = compute_dtype(x)
        # (B, C, rows, p, cols, p) -> (rows, cols, B, C, p, p) -> (N * B, C*p*p): patch rows in token-major order.
        patches = x.to(dtype).reshape(batch, chans, rows, p, cols, p).permute(2, 4, 0, 1, 3, 5)
        patches = patches.reshape(rows * cols * batch, -1)
        weight = self.proj.weight.reshape(self.proj.out_channels, -1).to(dtype)
        bias = None if self.proj.bias is None else self.proj.bias.to(dtype)
        return linear(patches, weight, bias).view(rows * cols, batch, -1)
