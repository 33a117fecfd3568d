"""The training sampler: a seeded global order, repeated augmentation, and this rank's share of it.

Accelerate and rank-aware samplers (the double-sharding trap, accelerate#3520): ``accelerator.prepare`` always
re-shards a DataLoader, so a sampler that already picks this rank's share gets split a second time and each rank
silently sees 1/world of its data. We choose to shard here, in the sampler, and **not** to prepare the training
loader (option (i) of docs/vision.md), because:

- repeated copies of an image land on different ranks, as in DeiT's RASampler (on one process they are
  neighbours in a batch, also as in DeiT);
- the global order and every sample's augmentation seed depend on (seed, epoch, position) only, never on the
  world size, so one process with batch 2B sees exactly the same images, identically augmented, as two
  processes with batch B each;
- resuming in the middle of an epoch is ``set_epoch(epoch, start)``: no accelerate dataloader state involved.

The sampler yields ``(index, augmentation_seed)`` pairs, which ``SeededSamples`` turns into reproducible
augmentations. Unlike timm's ``RepeatAugSampler`` (which shuffles with the epoch number only) it takes a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
from torch.utils.data import Sampler


class ShardedTrainSampler(Sampler[tuple[int, int]]):
    """Shuffled, optionally repeated, order of a dataset, split across ranks by striding.

    Per epoch the global sequence is: a permutation of the indices (seeded by ``seed`` and the epoch), each index
    repeated ``repeats`` times in a row, truncated to the epoch length and then to a multiple of ``num_replicas``.
    Rank ``r`` takes positions ``r, r + world, r + 2 * world, ...``.

    Truncating (rather than padding, as ``DistributedSampler`` does) means no image is ever drawn twice by
    padding, and the number of full batches, ``floor(floor(L / world) / batch) = floor(L / (world * batch))``, is
    the same for one process with batch ``world * batch`` as for ``world`` processes with ``batch``. At most
    ``world - 1`` images of the shuffled order (different ones every epoch) are left out of an epoch; with a
    dataset whose size is a multiple of the world size, each epoch covers every image exactly once.

    Args:
        num_samples: Length of the dataset.
        num_replicas: Number of processes (``accelerator.num_processes``).
        rank: This process (``accelerator.process_index``).
        repeats: Repeated augmentation factor (3 in the paper; 1 turns it off).
        epoch_length: ``dataset``: an epoch has as many samples as the dataset (rounded down to whole groups of
            ``repeats``), so it shows ``num_samples // repeats`` distinct images, DeiT's choice; ``repeated``:
            every image ``repeats`` times, an epoch ``repeats`` times longer.
        shuffle: Shuffle every epoch (False keeps the dataset order, for tests and debugging).
        seed: Base seed of the order and of the per-sample augmentation seeds.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        repeats: int = 1,
        epoch_length: Literal["dataset", "repeated"] = "dataset",
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("the training dataset is empty")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in [0, num_replicas={num_replicas}), got {rank}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if epoch_length not in ("dataset", "repeated"):
            raise ValueError(f"epoch_length must be 'dataset' or 'repeated', got {epoch_length!r}")
        if num_samples < num_replicas:
            raise ValueError(f"{num_samples} training images cannot be shared by {num_replicas} processes")
        self.num_samples = num_samples
        self.num_replicas = num_replicas
        self.rank = rank
        self.repeats = repeats
        self.epoch_length = epoch_length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    @property
    def global_length(self) -> int:
        """Samples per epoch over all ranks, before padding."""
        if self.epoch_length == "repeated" or self.repeats == 1:
            return self.num_samples * self.repeats
        return max(self.num_samples // self.repeats, 1) * self.repeats

    @property
    def samples_per_rank(self) -> int:
        """Samples each rank draws in a full epoch."""
        return self.global_length // self.num_replicas

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; ``start`` skips this rank's first samples (resuming inside an epoch)."""
        if not 0 <= start <= self.samples_per_rank:
            raise ValueError(f"start must lie in [0, {self.samples_per_rank}], got {start}")
        self.epoch = epoch
        self.start = start

    def global_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's ``(indices, augmentation seeds)`` over all ranks; a prefix of a world-size-free sequence."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)
        order = np.repeat(order, self.repeats)[: self.global_length]
        # One seed per position: the copies of a repeated image get different augmentations.
        seeds = rng.integers(0, 2**63 - 1, size=len(order), dtype=np.int64)
        used = self.samples_per_rank * self.num_replicas
        return order[:used], seeds[:used]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.global_order(self.epoch)
        mine = slice(self.rank + self.start * self.num_replicas, None, self.num_replicas)
        return iter(zip(indices[mine].tolist(), seeds[mine].tolist()))

    def __len__(self) -> int:
        return self.samples_per_rank - self.start
