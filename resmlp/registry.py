"""The one registry of named ResMLP presets.

Names follow the paper: S = width 384, B = width 768, the number is the depth, ``_8`` is patch 8 (deit#207).
Weights are never part of a name.
"""

from __future__ import annotations

import dataclasses
import difflib

from .config import ResMLPConfig

_PRESETS: dict[str, ResMLPConfig] = {}

# ImageNet statistics (timm's IMAGENET_DEFAULT_MEAN/STD), which every released ResMLP was trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_config(name: str, config: ResMLPConfig) -> None:
    """Add a named preset. Names are unique: registering one twice is an error, never a silent overwrite."""
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    _PRESETS[name] = config


def list_models() -> list[str]:
    """Names of every registered preset, sorted."""
    return sorted(_PRESETS)


def get_config(name: str, **overrides) -> ResMLPConfig:
    """The preset ``name`` with ``overrides`` applied (validated again by the dataclass)."""
    if name not in _PRESETS:
        close = difflib.get_close_matches(name, _PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown ResMLP preset {name!r}.{hint} Available: {', '.join(list_models())}")
    base = _PRESETS[name]
    known = {f.name for f in dataclasses.fields(ResMLPConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown config overrides {unknown} for {name!r}; known fields: {sorted(known)}")
    return dataclasses.replace(base, **overrides)


def pretrained_cfg(name: str, config: ResMLPConfig | None = None, *, url: str = "") -> dict:
    """timm's ``pretrained_cfg`` for a preset: the evaluation transform and the model's named parts.

    The paper's 224 px models evaluate as DeiT does (bicubic resize to 224 / 0.9 = 248, centre crop 224); the small
    presets for 16-32 px images keep the whole image (crop 1.0), as our built-in recipes do.
    """
    config = config or get_config(name)
    height, width = config.image_hw
    return dict(
        url=url,
        num_classes=config.num_classes,
        input_size=(config.in_chans, height, width),
        pool_size=None,
        crop_pct=0.9 if min(height, width) >= 160 else 1.0,
        interpolation="bicubic",
        fixed_input_size=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        first_conv="patch_embed.proj",
        classifier="head",
        license="apache-2.0",
        origin_url="https://github.com/facebookresearch/deit",
        paper_ids="arXiv:2105.03404",
    )


# The paper's models (Table 1, 3 and D.3). LayerScale init follows the depth rule except for B24/8, which was
# released with 1e-6 although the rule gives 1e-5 at depth 24.
register_config("resmlp_s12", ResMLPConfig(embed_dim=384, depth=12, patch_size=16))
register_config("resmlp_s24", ResMLPConfig(embed_dim=384, depth=24, patch_size=16))
register_config("resmlp_s36", ResMLPConfig(embed_dim=384, depth=36, patch_size=16))
register_config("resmlp_b24", ResMLPConfig(embed_dim=768, depth=24, patch_size=16))
register_config("resmlp_b24_8", ResMLPConfig(embed_dim=768, depth=24, patch_size=8, layerscale_init=1e-6))
# The patch-size ablation of Table 3 (no released weights): S12 with 14 px and 8 px patches at 224 px.
register_config("resmlp_s12_14", ResMLPConfig(embed_dim=384, depth=12, patch_size=14))
register_config("resmlp_s12_8", ResMLPConfig(embed_dim=384, depth=12, patch_size=8))

# Small models for tests and small images (digits, CIFAR-sized data). Not from the paper.
register_config(
    "resmlp_tiny", ResMLPConfig(embed_dim=32, depth=2, patch_size=4, img_size=16, num_classes=10, in_chans=3)
)
register_config("resmlp_mini", ResMLPConfig(embed_dim=128, depth=6, patch_size=4, img_size=32, num_classes=10))
register_config("resmlp_s12_32", ResMLPConfig(embed_dim=384, depth=12, patch_size=4, img_size=32, num_classes=10))
