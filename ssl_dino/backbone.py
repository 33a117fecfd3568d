"""Backbones for DINO (every ``resmlp`` preset, timm models by name) and the multi-crop wrapper around them.

``MultiCropBackbone`` is DINO's ``MultiCropWrapper``: it groups consecutive crops of the same resolution, runs one
backbone forward per group, concatenates the pooled features and runs the head once. A ResMLP takes crops at
another resolution only through a derived crop policy (``ssl_dino.derived_mixing``); whether a policy can work
with a backbone is decided when the wrapper is built, never halfway through training.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import nn

import resmlp

from .crop_policy import CropPolicy
from .derived_mixing import features_at_grid

TIMM_PREFIX = "timm:"


def build_backbone(
    name: str, *, img_size: int | None = None, drop_path_rate: float = 0.0, variant: dict | None = None
) -> nn.Module:
    """A feature backbone (pooled output, no classifier) by name: a ``resmlp`` preset, or a timm model.

    ``timm:NAME`` forces timm (for a name that is also a resmlp preset). timm models are built with
    ``pretrained=False, num_classes=0``; models with a fixed input size (ViT, Mixer, timm's ResMLP) are built for
    ``img_size``. ``img_size=None`` keeps the preset's or timm's default. ``variant``: the paper's ablation fields
    (``token_mixer``, ``norm`` ...), for a resmlp preset only. An unknown name raises ``KeyError`` listing the
    choices.
    """
    import timm  # imported on demand: it is slow to import and a resmlp preset does not need it

    if not name.startswith(TIMM_PREFIX) and name in resmlp.list_models():
        overrides = {"img_size": img_size} if img_size is not None else {}
        return resmlp.create_model(name, num_classes=0, drop_path_rate=drop_path_rate, **overrides, **(variant or {}))
    if variant:
        raise ValueError(f"{sorted(variant)} are ResMLP ablation keys; timm model {name!r} takes none of them")
    timm_name = name.removeprefix(TIMM_PREFIX)
    if not timm.is_model(timm_name):
        known = resmlp.list_models()
        close = difflib.get_close_matches(timm_name, known + timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown backbone {name!r}.{hint} Choose a resmlp preset ({', '.join(known)}) or any timm model name "
            f"(timm.list_models(), {len(timm.list_models())} names; prefix 'timm:' to force timm)"
        )
    kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    cfg = timm.models.get_pretrained_cfg(timm_name)
    fixed = cfg is not None and cfg.fixed_input_size
    if fixed and img_size is not None and tuple(cfg.input_size[-2:]) != (img_size, img_size):
        kwargs["img_size"] = img_size
    try:
        return timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    except TypeError as err:
        raise ValueError(f"timm model {timm_name!r} cannot be built with {kwargs}: {err}") from err


def native_input_size(backbone: nn.Module) -> tuple[int, int] | None:
    """The only (H, W) a backbone takes, or None when it takes any size (a CNN)."""
    if isinstance(backbone, resmlp.ResMLP):
        return tuple(backbone.config.image_hw)
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    if not cfg.get("fixed_input_size", False):
        return None
    embed = getattr(backbone, "patch_embed", None) or getattr(backbone, "stem", None)
    size = getattr(embed, "img_size", None)
    return tuple(size) if size is not None else tuple(cfg["input_size"][-2:])


def check_crop_policy(policy: CropPolicy, backbone: nn.Module) -> None:
    """Raise ``ValueError`` saying why ``policy`` cannot work with ``backbone``; return quietly when it can."""
    native = native_input_size(backbone)
    kind = type(backbone).__name__
    if native is not None and native != (policy.global_size, policy.global_size):
        raise ValueError(
            f"the {kind} backbone takes {native[0]}x{native[1]} images but the crop policy's global size is "
            f"{policy.global_size}; build the backbone with img_size={policy.global_size} or set "
            f"global_size={native[0]}"
        )
    if policy.name in ("none", "resize"):
        return
    if policy.derive_mode is not None:
        if not isinstance(backbone, resmlp.ResMLP):
            raise ValueError(
                f"crop policy {policy.name!r} derives local token-mixing matrices from a ResMLP's, but the backbone "
                f"is a {kind}"
                + (" with a fixed input size" if native is not None else "")
                + "; use 'resize' or 'none' (or 'native' for a backbone that takes any input size)"
            )
        patch = backbone.patch_embed.patch_size
        if policy.local_size % patch:
            low = max(patch, policy.local_size // patch * patch)
            raise ValueError(
                f"local_size {policy.local_size} does not divide into whole {patch}x{patch} patches; use a multiple "
                f"of {patch}, for example {low} or {low + patch}"
            )
        if policy.derive_mode == "subgrid" and policy.local_size > policy.global_size:
            raise ValueError(
                f"policy 'derived_subgrid' needs local_size <= global_size, got {policy.local_size} > "
                f"{policy.global_size}; use 'derived' (interpolation) or a smaller local_size"
            )
        return
    # "native": the backbone must take the local size as it is.
    if native is not None:
        hint = "'derived' or 'derived_subgrid'" if isinstance(backbone, resmlp.ResMLP) else "'resize' or 'none'"
        raise ValueError(
            f"crop policy 'native' feeds {policy.local_size}px local crops to the backbone as they are, but the {kind} "
            f"backbone only takes {native[0]}x{native[1]} images; use {hint}"
        )


def pooled_features(backbone: nn.Module, images: torch.Tensor, derive_mode: str | None = None) -> torch.Tensor:
    """Pooled features (B, D) of ``backbone``; a ResMLP at a foreign size goes through derived token mixing."""
    if isinstance(backbone, resmlp.ResMLP):
        if tuple(images.shape[-2:]) != tuple(backbone.config.image_hw) and derive_mode is not None:
            return features_at_grid(backbone, images, derive_mode)
        return backbone.forward_head(backbone.forward_features(images), pre_logits=True)
    return backbone(images)


class MultiCropBackbone(nn.Module):
    """Backbone + DINO head over a list of crops; DINO's ``MultiCropWrapper`` with crop policies.

    Args:
        backbone: From ``build_backbone`` (a ResMLP with or without classifier, or a timm model with
            ``num_classes=0``).
        head: The projection head (``ssl_dino.head.DINOHead``); ``nn.Identity()`` for features only.
        policy: The crop policy; checked against the backbone here. None accepts only native-size crops.

    ``forward(crops)`` takes a list of (B, C, H, W) tensors (or one tensor) and returns the head output for all
    crops concatenated in order, ``(len(crops) * B, out_dim)``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, policy: CropPolicy | None = None) -> None:
        super().__init__()
        if policy is not None:
            check_crop_policy(policy, backbone)
        self.backbone = backbone
        self.head = head
        self.policy = policy

    def forward(self, crops: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        derive_mode = self.policy.derive_mode if self.policy is not None else None
        features = []
        start = 0
        # One backbone call per run of consecutive crops with the same resolution (2 global, then N local).
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            features.append(pooled_features(self.backbone, torch.cat(list(crops[start:end])), derive_mode))
            start = end
        return self.head(torch.cat(features))
