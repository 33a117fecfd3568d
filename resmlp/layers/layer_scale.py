"""LayerScale: a learnable per-channel gain on a residual branch (CaiT), the paper's "post-normalisation Aff"."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiply the channels of a residual branch by ``gamma``, initialised to a small constant.

    The released models have no shift here (the preceding linear layer's bias provides it). The init value
    depends on the network's total depth; ``resmlp.config.layerscale_init_for_depth`` holds the rule.
    """

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init_value)

    def extra_repr(self) -> str:
        return f"dim={self.gamma.numel()}, init_value={self.init_value:g}"
