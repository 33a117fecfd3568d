"""DINO self-supervised pretraining of ResMLP, and k-NN / linear evaluation of its features.

The method pieces follow facebookresearch/dino (Caron et al., arXiv 2104.14294); the ResMLP-specific part is the
crop policy (``ssl_dino.crop_policy``), since a fixed-size token-mixing matrix cannot take DINO's small local crops.
See docs/dino.md.

Names are imported on first use, so ``import ssl_dino.knn`` (or a worker process that needs only the loss) does not
pay for torchvision, timm or trainkit.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MultiCropBackbone": "backbone",
    "build_backbone": "backbone",
    "check_crop_policy": "backbone",
    "pooled_features": "backbone",
    "clip_gradients": "clipping",
    "CROP_POLICIES": "crop_policy",
    "CropPolicy": "crop_policy",
    "make_crop_policy": "crop_policy",
    "derive_token_mixing": "derived_mixing",
    "features_at_grid": "derived_mixing",
    "collapse_diagnostics": "diagnostics",
    "DINOHead": "head",
    "cancel_last_layer_grads": "head",
    "knn_classifier": "knn",
    "knn_evaluate": "knn",
    "DINOLoss": "loss",
    "MultiCropAugmentation": "multicrop",
    "DINOSchedule": "schedules",
    "teacher_temp_at": "schedules",
    "make_teacher": "teacher",
    "update_teacher": "teacher",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ssl_dino' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
