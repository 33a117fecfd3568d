"""Online k-NN monitor for DINO pretraining: weighted k-NN (k = 20) of frozen features on a labelled held-out split.

The bank is the labelled ``train`` split and the queries the ``val`` split, both through the evaluation transform
(no augmentation). Loaders are prepared by the accelerator, so each process embeds its shard and
``gather_for_metrics`` assembles every feature exactly once; the bank stays on the CPU. Every process computes the
same result (the k-NN is cheap next to the feature extraction), so no broadcast is needed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .data import build_dataset, eval_transform, num_classes_of
from .features import extract_features
from .knn import knn_evaluate
from .recipe import MonitorConfig


class KnnMonitor:
    """``monitor(backbone) -> {"knn_top1", "knn_top5"}`` on ``dataset``'s train (bank) and val (queries) splits."""

    def __init__(
        self,
        cfg: MonitorConfig,
        dataset: str,
        img_size: int,
        accelerator,
        *,
        seed: int = 0,
        skip_corrupt_images: bool = False,
    ) -> None:
        transform = eval_transform(img_size, crop_ratio=cfg.crop_ratio)
        common = {"img_size": img_size, "skip_corrupt_images": skip_corrupt_images, "evaluation": True}
        bank = build_dataset(dataset, "train", transform, **common)
        queries = build_dataset(dataset, "val", transform, **common)
        self.num_classes = num_classes_of(bank)
        if cfg.max_train_samples is not None and cfg.max_train_samples < len(bank):
            keep = torch.randperm(len(bank), generator=torch.Generator().manual_seed(seed))[: cfg.max_train_samples]
            bank = Subset(bank, sorted(keep.tolist()))
        self.cfg = cfg
        self.accelerator = accelerator
        # Prepared loaders never shuffle and draw nothing from the global RNG, so a monitor call leaves the
        # training's random stream untouched (resumed runs stay identical to uninterrupted ones).
        self.bank_loader, self.query_loader = accelerator.prepare(
            DataLoader(bank, batch_size=cfg.batch_size, shuffle=False),
            DataLoader(queries, batch_size=cfg.batch_size, shuffle=False),
        )

    @torch.no_grad()
    def __call__(self, backbone: nn.Module) -> dict[str, float]:
        was_training = backbone.training
        backbone.eval()
        train_x, train_y = extract_features(backbone, self.bank_loader, accelerator=self.accelerator)
        test_x, test_y = extract_features(backbone, self.query_loader, accelerator=self.accelerator)
        backbone.train(was_training)
        (top1, top5) = knn_evaluate(
            train_x, train_y, test_x, test_y, [self.cfg.k], self.cfg.temperature, self.num_classes
        )[self.cfg.k]
        return {"knn_top1": top1, "knn_top5": top5}
