"""torch.hub entry points: one per ResMLP preset, plus facebookresearch/deit's own ResMLP entry points.

Usage::

    model = torch.hub.load("OWNER/resmlp", "resmlp_s12", pretrained=True)                 # fb_in1k
    model = torch.hub.load("OWNER/resmlp", "resmlp_s12", pretrained=True, tag="fb_distilled_in1k")
    model = torch.hub.load("OWNER/resmlp", "resmlp_12", pretrained=True, dist=True)        # deit's exact line
    model = torch.hub.load("path/to/this/repo", "resmlp_tiny", source="local")            # random init

Weights download once into ``torch.hub.get_dir()/checkpoints`` (``RESMLP_WEIGHTS_URL`` overrides the base URL).
Every entry point also takes ``checkpoint=PATH`` (any format ``resmlp.create_model`` reads) and any
``resmlp.create_model`` keyword (``num_classes``, ``fresh_head``, ``img_size``, ``drop_path_rate`` ...), and
returns a ``resmlp.ResMLP``. deit's entry points keep deit's flags: ``dist`` (distilled weights), ``dino`` (DINO
weights, loaded as a backbone without classifier) and ``in_22k`` (ImageNet-21k pre-training, B24/8 only).
"""

from __future__ import annotations

import os

from resmlp import ResMLP, create_model

dependencies = ["torch"]

Checkpoint = str | os.PathLike | None


def _ours(preset: str, pretrained: bool, tag: str | None, checkpoint: Checkpoint, kwargs: dict) -> ResMLP:
    name = f"{preset}.{tag}" if tag else preset
    return create_model(name, pretrained=pretrained, checkpoint=checkpoint, **kwargs)


def resmlp_s12(pretrained: bool = False, tag: str | None = None, checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S12: width 384, depth 12, patch 16, 224 px (15.4M parameters); tags fb_in1k, fb_distilled_in1k,
    fb_dino."""
    return _ours("resmlp_s12", pretrained, tag, checkpoint, kwargs)


def resmlp_s24(pretrained: bool = False, tag: str | None = None, checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S24: width 384, depth 24, patch 16, 224 px (30.0M parameters); tags fb_in1k, fb_distilled_in1k,
    fb_dino."""
    return _ours("resmlp_s24", pretrained, tag, checkpoint, kwargs)


def resmlp_s36(pretrained: bool = False, tag: str | None = None, checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S36: width 384, depth 36, patch 16, 224 px (44.7M parameters); tags fb_in1k, fb_distilled_in1k."""
    return _ours("resmlp_s36", pretrained, tag, checkpoint, kwargs)


def resmlp_b24(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-B24 (patch 16, the paper's Table 1 model; no released weights): width 768, depth 24."""
    return create_model("resmlp_b24", checkpoint=checkpoint, **kwargs)


def resmlp_b24_8(pretrained: bool = False, tag: str | None = None, checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-B24/8 (deit's ``resmlpB_24``): width 768, depth 24, patch 8, 224 px (129.1M parameters); tags
    fb_in1k, fb_distilled_in1k, fb_in22k_ft_in1k."""
    return _ours("resmlp_b24_8", pretrained, tag, checkpoint, kwargs)


def resmlp_s12_14(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S12/14, the paper's patch-size ablation (no released weights): patch 14 at 224 px (15.6M)."""
    return create_model("resmlp_s12_14", checkpoint=checkpoint, **kwargs)


def resmlp_s12_8(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """ResMLP-S12/8, the paper's patch-size ablation (no released weights): patch 8 at 224 px (22.1M)."""
    return create_model("resmlp_s12_8", checkpoint=checkpoint, **kwargs)


def resmlp_tiny(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """Test-sized model, not from the paper: 16 px, patch 4, width 32, depth 2, 10 classes."""
    return create_model("resmlp_tiny", checkpoint=checkpoint, **kwargs)


def resmlp_mini(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """Small model for 32 px images, not from the paper: patch 4, width 128, depth 6, 10 classes."""
    return create_model("resmlp_mini", checkpoint=checkpoint, **kwargs)


def resmlp_s12_32(checkpoint: Checkpoint = None, **kwargs) -> ResMLP:
    """S12 width and depth on 32 px images (patch 4, 64 tokens, 10 classes), for CIFAR-sized data."""
    return create_model("resmlp_s12_32", checkpoint=checkpoint, **kwargs)


# ---- facebookresearch/deit's entry points, same names and flags: a deit user changes only the repository ----
def _deit(preset: str, pretrained: bool, dist: bool, dino: bool, in_22k: bool, kwargs: dict) -> ResMLP:
    if sum((dist, dino, in_22k)) > 1:
        raise ValueError("choose at most one of dist=True, dino=True and in_22k=True")
    tag = "fb_distilled_in1k" if dist else "fb_dino" if dino else "fb_in22k_ft_in1k" if in_22k else "fb_in1k"
    return create_model(f"{preset}.{tag}", pretrained=pretrained, **kwargs)


def resmlp_12(pretrained: bool = False, dist: bool = False, dino: bool = False, **kwargs) -> ResMLP:
    """deit's ``resmlp_12``: ResMLP-S12; ``dist`` distilled weights, ``dino`` DINO weights (a backbone)."""
    return _deit("resmlp_s12", pretrained, dist, dino, False, kwargs)


def resmlp_24(pretrained: bool = False, dist: bool = False, dino: bool = False, **kwargs) -> ResMLP:
    """deit's ``resmlp_24``: ResMLP-S24; ``dist`` distilled weights, ``dino`` DINO weights (a backbone)."""
    return _deit("resmlp_s24", pretrained, dist, dino, False, kwargs)


def resmlp_36(pretrained: bool = False, dist: bool = False, **kwargs) -> ResMLP:
    """deit's ``resmlp_36``: ResMLP-S36; ``dist`` distilled weights."""
    return _deit("resmlp_s36", pretrained, dist, False, False, kwargs)


def resmlpB_24(pretrained: bool = False, dist: bool = False, in_22k: bool = False, **kwargs) -> ResMLP:  # noqa: N802
    """deit's ``resmlpB_24``: ResMLP-B24/8; ``dist`` distilled weights, ``in_22k`` ImageNet-21k pre-training."""
    return _deit("resmlp_b24_8", pretrained, dist, False, in_22k, kwargs)
