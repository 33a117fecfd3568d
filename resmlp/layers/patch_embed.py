"""Patch embedding: a linear map applied to each non-overlapping p x p patch."""

from __future__ import annotations

import torch
from torch import nn


@torch.fx.wrap
def check_image_shape(shape: list[int], expected: list[int]) -> None:
    """Refuse images that do not fit the patch grid, naming the size to use (a leaf for ``torch.fx``)."""
    if len(shape) != 4 or list(shape[1:]) != expected:
        raise ValueError(
            f"expected images of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) "
            f"(in_chans x height x width), got {list(shape)}; resize or crop the input to "
            f"{expected[1]}x{expected[2]}, or build the model with img_size set to the size of your images"
        )


class PatchEmbed(nn.Module):
    """Cut an image into p x p patches and project each to ``embed_dim`` channels: (B, C, H, W) -> (B, N, D).

    The projection is the official ``Conv2d(kernel=stride=p)`` (``proj.weight`` of shape (D, C, p, p)). Tokens come
    out in row-major grid order (index ``row * grid_width + col``), as in the official code.
    """

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.patch_size = patch_size
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        # Default PyTorch conv init, as the official model (which never re-initialises the patch projection).
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the expected size when ``x`` does not fit this model's patch grid."""
        check_image_shape(x.shape, [self.in_chans, self.img_size[0], self.img_size[1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.proj(x).flatten(2).transpose(1, 2)
