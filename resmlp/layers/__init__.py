"""ResMLP building blocks. Each layer is one small module that depends only on torch."""

from .affine import Affine
from .block import ResMLPBlock
from .cross_patch import CrossPatchLinear
from .drop_path import DropPath
from .layer_scale import LayerScale
from .mlp import ChannelMLP
from .patch_embed import PatchEmbed
from .residual import PreAffineResidual

__all__ = [
    "Affine",
    "ChannelMLP",
    "CrossPatchLinear",
    "DropPath",
    "LayerScale",
    "PatchEmbed",
    "PreAffineResidual",
    "ResMLPBlock",
]
