"""Reproducible augmentation: each sample is transformed under its own seed, whatever process loads it.

timm's and torchvision's random transforms draw from the global Python, NumPy and torch generators. In a
DataLoader those streams depend on the number of workers, the world size and where a resumed run restarted.
Seeding the three generators from a per-sample seed (chosen by ``ShardedTrainSampler`` from the run seed, the
epoch and the sample's position) makes an augmented image a function of those three numbers alone.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info


class SeededSamples(Dataset):
    """Wrap ``dataset`` so that ``wrapped[(index, seed)]`` returns ``dataset[index]`` drawn under ``seed``.

    In the main process (``num_workers=0``) the global generator states are restored afterwards, so loading leaves
    the training loop's random streams (dropout, drop path, Mixup) untouched; worker processes skip that (saving
    NumPy's state costs more than the seeding). A plain integer key loads without seeding.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        if get_worker_info() is not None:  # a worker's generators serve only the data: no need to restore them
            _seed_all(seed)
            return self.dataset[index]
        # Only the CPU torch generator: torch.manual_seed would also reseed the CUDA generators of the loop.
        saved = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
        try:
            _seed_all(seed)
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.default_generator.set_state(saved[2])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
