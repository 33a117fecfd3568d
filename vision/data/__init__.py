"""Datasets, transforms, Mixup and loaders for vision training and evaluation.

Entry points: ``build_dataset(data_cfg, split, transform)`` for one split, and ``build_loaders(...)`` for the
training and validation DataLoaders of one process (see ``loaders.py`` for what to pass to
``accelerator.prepare``). The datasets and the data grammar (``data.dataset``, ``--data``) live in
``trainkit.data``, shared with DINO; they are re-exported here.
"""

from trainkit.data import (
    DIGIT_CLASSES,
    PROCEDURAL_CLASSES,
    CheckedImageFolder,
    DataError,
    DataSpecError,
    ImageNetV2Folder,
    cifar_dataset,
    digits_dataset,
    procedural_dataset,
    render_procedural,
)

from .build import build_dataset, check_num_classes, check_same_classes, dataset_channels, parse_data_spec
from .loaders import VisionLoaders, build_loaders
from .mixup import build_mixup, check_even_batch
from .real_labels import load_real_labels, real_top1
from .sampler import ShardedTrainSampler
from .seeded import SeededSamples
from .transforms import build_eval_transform, build_train_transform, eval_resize_size, normalization

__all__ = [
    "DIGIT_CLASSES",
    "PROCEDURAL_CLASSES",
    "CheckedImageFolder",
    "DataError",
    "DataSpecError",
    "ImageNetV2Folder",
    "SeededSamples",
    "ShardedTrainSampler",
    "VisionLoaders",
    "build_dataset",
    "build_eval_transform",
    "build_loaders",
    "build_mixup",
    "build_train_transform",
    "check_even_batch",
    "check_num_classes",
    "check_same_classes",
    "cifar_dataset",
    "dataset_channels",
    "digits_dataset",
    "eval_resize_size",
    "load_real_labels",
    "normalization",
    "parse_data_spec",
    "procedural_dataset",
    "real_top1",
    "render_procedural",
]
