"""``build_loaders``: the training and validation DataLoaders of one process, and how to use them with accelerate.

- The **training** loader is already sharded for this rank (``ShardedTrainSampler``): **do not** pass it to
  ``accelerator.prepare`` (it would be sharded a second time, see ``sampler.py``). Move its batches to
  ``accelerator.device`` yourself and call ``loaders.set_epoch(epoch)`` before every epoch.
- The **validation** loader is a plain sequential loader over the whole split: **do** pass it to
  ``accelerator.prepare`` when running on several processes, so that accelerate shards it and
  ``gather_for_metrics`` drops the samples it pads the last batch with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from timm.data import Mixup
from torch.utils.data import DataLoader

from trainkit.data import CheckedImageFolder, DataError
from trainkit.interrupts import ignore_in_workers

from ..config import AugmentConfig, DataConfig, EvalConfig
from .build import build_dataset, check_same_classes, dataset_channels
from .mixup import build_mixup, check_even_batch
from .sampler import ShardedTrainSampler
from .seeded import SeededSamples
from .transforms import build_eval_transform, build_train_transform, normalization


@dataclass
class VisionLoaders:
    """What ``build_loaders`` returns.

    Attributes:
        train: This rank's training batches ``(images, targets)``; never ``accelerator.prepare`` it.
        val: Validation batches over the full split, in dataset order; ``accelerator.prepare`` it.
        sampler: The training sampler (its ``global_order`` documents the exact sequence of an epoch).
        mixup: Apply to each training batch on the device (``images, targets = mixup(images, targets)``), or None.
        num_classes: Classes in the data.
        in_chans: Channels of the images.
        batch_size: Training images per process per step.
    """

    train: DataLoader
    val: DataLoader
    sampler: ShardedTrainSampler
    mixup: Mixup | None
    num_classes: int
    in_chans: int
    batch_size: int

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch's order; ``start_step`` skips the batches a resumed run already trained on."""
        self.sampler.set_epoch(epoch, start=start_step * self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per process in a full epoch (the last incomplete batch is dropped)."""
        return self.sampler.samples_per_rank // self.batch_size

    def corrupt_files(self) -> dict[str, list[str]]:
        """Unreadable images skipped so far, per split (only with ``data.skip_corrupt_images``)."""
        found = {}
        for split, dataset in (("train", self.train.dataset.dataset), ("val", self.val.dataset)):
            if isinstance(dataset, CheckedImageFolder):
                found[split] = dataset.corrupt_files()
        return found


def build_loaders(
    data: DataConfig,
    augment: AugmentConfig,
    evaluation: EvalConfig,
    *,
    img_size: int | tuple[int, int],
    batch_size: int,
    world_size: int = 1,
    rank: int = 0,
    seed: int = 0,
    num_workers: int = 0,
) -> VisionLoaders:
    """Training and validation loaders for one process of ``world_size`` (the caller passes its rank).

    Args:
        img_size: Model input size; training crops and the eval centre crop produce it.
        batch_size: Training images per process per step; even when Mixup/CutMix is on.
        world_size: ``accelerator.num_processes``.
        rank: ``accelerator.process_index``.
        seed: Run seed: fixes the order of every epoch and every augmentation.
        num_workers: DataLoader worker processes per process.

    Returns:
        ``VisionLoaders``. Do **not** ``accelerator.prepare`` ``.train`` (it is sharded here); **do** prepare ``.val``.
    """
    check_even_batch(augment, batch_size)
    in_chans = dataset_channels(data)
    mean, std = normalization(data, in_chans)
    train_set = build_dataset(data, "train", build_train_transform(augment, img_size=img_size, mean=mean, std=std))
    eval_transform = build_eval_transform(
        img_size=img_size, crop_ratio=evaluation.crop_ratio, interpolation=evaluation.interpolation, mean=mean, std=std
    )
    val_set = build_dataset(data, "val", eval_transform)
    check_same_classes(train_set, val_set)
    sampler = ShardedTrainSampler(
        len(train_set),
        num_replicas=world_size,
        rank=rank,
        repeats=augment.repeated_aug,
        epoch_length=augment.repeated_aug_epoch,
        seed=seed,
    )
    if sampler.samples_per_rank < batch_size:
        raise DataError(
            f"each process gets {sampler.samples_per_rank} training images per epoch, fewer than one batch of "
            f"{batch_size}; lower run.batch_size or use more data"
        )
    pin = torch.cuda.is_available()
    # Workers leave Ctrl-C / SIGTERM to the training loop, which finishes its step and saves (trainkit.interrupts).
    common = {"num_workers": num_workers, "pin_memory": pin, "persistent_workers": num_workers > 0}
    if num_workers:
        common["worker_init_fn"] = ignore_in_workers
    # Own generators: creating an iterator of a loader without one draws from the global torch RNG, so a resumed
    # run (which creates one iterator more, mid-epoch) would drift from an uninterrupted one.
    # drop_last: Mixup needs full, even batches, and every rank must take the same number of steps.
    train = DataLoader(
        SeededSamples(train_set),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator(),
        **common,
    )
    eval_batch = evaluation.batch_size or math.ceil(1.5 * batch_size)  # DeiT evaluates with 1.5x the batch
    val = DataLoader(
        val_set, batch_size=eval_batch, shuffle=False, drop_last=False, generator=torch.Generator(), **common
    )
    mixup = build_mixup(augment, len(train_set.classes))
    return VisionLoaders(train, val, sampler, mixup, len(train_set.classes), in_chans, batch_size)
