"""Training sampler and loaders: coverage across simulated ranks, repeated augmentation, reproducible augmentation."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from vision.config import AugmentConfig, DataConfig, EvalConfig
from vision.data import SeededSamples, ShardedTrainSampler, build_loaders, digits_dataset
from vision.data.transforms import build_train_transform, normalization


def _epoch(num_samples: int, world: int, **kwargs) -> list[list[tuple[int, int]]]:
    """What each of ``world`` simulated ranks draws in epoch 0."""
    samplers = [ShardedTrainSampler(num_samples, num_replicas=world, rank=r, **kwargs) for r in range(world)]
    return [list(s) for s in samplers]


def test_two_ranks_cover_the_dataset_exactly_once_without_repeats() -> None:
    ranks = _epoch(100, 2, repeats=1, seed=3)
    assert len(ranks[0]) == len(ranks[1]) == 50
    indices = [i for rank in ranks for i, _ in rank]
    assert sorted(indices) == list(range(100))
    assert not set(i for i, _ in ranks[0]) & set(i for i, _ in ranks[1])


def test_uneven_dataset_leaves_one_sample_out_and_never_duplicates() -> None:
    ranks = _epoch(101, 2, repeats=1)
    counts = Counter(i for rank in ranks for i, _ in rank)
    assert len(ranks[0]) == len(ranks[1]) == 50
    assert len(counts) == 100 and set(counts.values()) == {1}


def test_repeated_augmentation_shows_every_image_repeats_times_on_different_ranks() -> None:
    ranks = _epoch(60, 3, repeats=3, epoch_length="repeated", seed=1)
    counts = Counter(i for rank in ranks for i, _ in rank)
    assert set(counts) == set(range(60)) and set(counts.values()) == {3}
    for rank in ranks:  # with 3 ranks, the 3 copies of an image land on 3 different ranks
        assert len({i for i, _ in rank}) == len(rank)
    seeds = Counter(seed for rank in ranks for _, seed in rank)
    assert max(seeds.values()) == 1  # every copy is augmented differently


def test_repeated_augmentation_with_dataset_epoch_length_keeps_whole_groups() -> None:
    ranks = _epoch(100, 3, repeats=3, epoch_length="dataset", seed=0)
    counts = Counter(i for rank in ranks for i, _ in rank)
    assert sum(len(rank) for rank in ranks) == 99  # 33 images x 3 copies: an epoch as long as the dataset
    assert len(counts) == 33 and set(counts.values()) == {3}


def test_global_order_is_independent_of_the_world_size() -> None:
    one = ShardedTrainSampler(64, num_replicas=1, rank=0, repeats=3, seed=5)
    two = _epoch(64, 2, repeats=3, seed=5)
    order = list(one)
    batch = 8  # one process with batch 16 sees, step by step, what two processes with batch 8 see together
    assert len(order) // (2 * batch) == len(two[0]) // batch == 3  # the same number of steps per epoch
    for step in range(len(two[0]) // batch):
        together = two[0][step * batch : (step + 1) * batch] + two[1][step * batch : (step + 1) * batch]
        assert sorted(together) == sorted(order[step * 2 * batch : (step + 1) * 2 * batch])


def test_epochs_and_seeds_change_the_order_and_resume_skips_exactly() -> None:
    sampler = ShardedTrainSampler(50, num_replicas=2, rank=1, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second and sorted(i for i, _ in first) != list(range(25))
    assert list(ShardedTrainSampler(50, num_replicas=2, rank=1, seed=0)) == first
    assert list(ShardedTrainSampler(50, num_replicas=2, rank=1, seed=1)) != first
    sampler.set_epoch(1, start=10)
    assert list(sampler) == second[10:] and len(sampler) == 15
    with pytest.raises(ValueError, match="rank must lie"):
        ShardedTrainSampler(10, num_replicas=2, rank=2)


def test_seeded_samples_reproduce_augmentations_and_restore_global_rng() -> None:
    mean, std = normalization(None, 3)
    transform = build_train_transform(AugmentConfig(), img_size=16, mean=mean, std=std)
    dataset = SeededSamples(digits_dataset("val", size=16, transform=transform))
    random.seed(0)
    torch.manual_seed(0)
    before = random.random(), torch.rand(1)
    random.seed(0)
    torch.manual_seed(0)
    a, _ = dataset[(4, 123)]
    b, _ = dataset[(4, 123)]
    c, _ = dataset[(4, 124)]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (random.random(), torch.rand(1)) == before  # the training loop's streams are untouched


def _loaders(world: int, rank: int, batch: int, workers: int = 0):
    augment = AugmentConfig(repeated_aug=3, hflip=0.0)  # RandAugment, random erasing, crops: all on
    data = DataConfig(dataset="digits", builtin_size=16)
    return build_loaders(
        data,
        augment,
        EvalConfig(),
        img_size=16,
        batch_size=batch,
        world_size=world,
        rank=rank,
        seed=11,
        num_workers=workers,
    )


def test_two_process_batches_equal_one_process_batch_images_and_augmentations() -> None:
    single = _loaders(1, 0, batch=8)
    rank0, rank1 = _loaders(2, 0, batch=4), _loaders(2, 1, batch=4, workers=2)
    assert rank0.steps_per_epoch == rank1.steps_per_epoch == single.steps_per_epoch
    for loaders in (single, rank0, rank1):
        loaders.set_epoch(2)
    steps = zip(single.train, rank0.train, rank1.train)
    for _ in range(2):
        (x, y), (x0, y0), (x1, y1) = next(steps)
        # Rank r holds global positions r, r + 2, ...: interleaving the two ranks rebuilds the global batch.
        assert torch.equal(torch.stack([x0, x1], 1).flatten(0, 1), x)
        assert torch.equal(torch.stack([y0, y1], 1).flatten(0, 1), y)


def test_build_loaders_shapes_classes_and_mixup() -> None:
    loaders = _loaders(2, 1, batch=6)
    images, targets = next(iter(loaders.train))
    assert images.shape == (6, 3, 16, 16) and targets.dtype == torch.int64
    mixed, soft = loaders.mixup(images, targets)
    assert soft.shape == (6, 10) and loaders.num_classes == 10 and loaders.in_chans == 3
    val_images, _ = next(iter(loaders.val))
    assert val_images.shape == (9, 3, 16, 16)  # 1.5 x the training batch, DeiT's eval batch
    assert sum(len(b[1]) for b in loaders.val) == len(digits_dataset("val"))  # full val set on every rank
    with pytest.raises(ValueError, match="odd"):
        _loaders(1, 0, batch=5)
    assert np.isclose(len(loaders.train), loaders.sampler.samples_per_rank // 6)
