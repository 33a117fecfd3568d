"""A sampler whose order is a pure function of (seed, epoch), so a resumed run replays the same order."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler):
    """Shuffles ``range(size)`` with the seed ``seed + epoch``; call ``set_epoch`` before each epoch.

    Draws nothing from the global RNG, so neither the loader nor a checkpoint's RNG state needs to know about it.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist())

    def __len__(self) -> int:
        return self.size
