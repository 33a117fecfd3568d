"""torch.hub entry points: one per registered ResMLP preset.

Usage (no weights are hosted; pass a local checkpoint of any supported format, see docs/checkpoints.md)::

    model = torch.hub.load("path/to/this/repo", "resmlp_s12", source="local", checkpoint="resmlp_12_no_dist.pth")
    model = torch.hub.load("path/to/this/repo", "resmlp_tiny", source="local")  # random init

Every entry point takes ``checkpoint=None`` and any ``resmlp.create_model`` keyword (``num_classes``,
``fresh_head``, ``checkpoint_key``, ``img_size``, ``drop_path_rate`` ...) and returns a ``resmlp.ResMLP``.
"""

from __future__ import annotations

import os

from resmlp import ResMLP, create_model

dependencies = ["torch"]

Checkpoint = str | os.PathLike | None


def resmlp_s12(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S12: width 384, depth 12, patch 16, 224 px (15.4M parameters)."""
    return create_model("resmlp_s12", checkpoint=checkpoint, **kwargs)


def resmlp_s24(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S24: width 384, depth 24, patch 16, 224 px (30.0M parameters)."""
    return create_model("resmlp_s24", checkpoint=checkpoint, **kwargs)


def resmlp_s36(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S36: width 384, depth 36, patch 16, 224 px (44.7M parameters)."""
    return create_model("resmlp_s36", checkpoint=checkpoint, **kwargs)


def resmlp_b24(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-B24 (patch 16, the paper's Table 1 model; no released weights): width 768, depth 24."""
    return create_model("resmlp_b24", checkpoint=checkpoint, **kwargs)


def resmlp_b24_8(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-B24/8 (the released ``resmlpB_24``): width 768, depth 24, patch 8, 224 px (129.1M parameters)."""
    return create_model("resmlp_b24_8", checkpoint=checkpoint, **kwargs)


def resmlp_tiny(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """Test-sized model, not from the paper: 16 px, patch 4, width 32, depth 2, 10 classes."""
    return create_model("resmlp_tiny", checkpoint=checkpoint, **kwargs)


def resmlp_mini(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """Small model for 32 px images, not from the paper: patch 4, width 128, depth 6, 10 classes."""
    return create_model("resmlp_mini", checkpoint=checkpoint, **kwargs)


def resmlp_s12_32(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """S12 width and depth on 32 px images (patch 4, 64 tokens, 10 classes), for CIFAR-sized data."""
    return create_model("resmlp_s12_32", checkpoint=checkpoint, **kwargs)
