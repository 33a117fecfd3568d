"""The one registry of named ResMLP presets.

Names follow the paper: S = width 384, B = width 768, the number is the depth, ``_8`` is patch 8 (deit#207).
Weights are never part of a name.
"""

from __future__ import annotations

import dataclasses
import difflib

from .config import ResMLPConfig

_PRESETS: dict[str, ResMLPConfig] = {}


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


# The paper's models (Table 1, 3 and D.3). LayerScale init follows the depth rule except for B24/8, which was
# released with 1e-6 although the rule gives 1e-5 at depth 24.
register_config("resmlp_s12", ResMLPConfig(embed_dim=384, depth=12, patch_size=16))
register_config("resmlp_s24", ResMLPConfig(embed_dim=384, depth=24, patch_size=16))
register_config("resmlp_s36", ResMLPConfig(embed_dim=384, depth=36, patch_size=16))
register_config("resmlp_b24", ResMLPConfig(embed_dim=768, depth=24, patch_size=16))
register_config("resmlp_b24_8", ResMLPConfig(embed_dim=768, depth=24, patch_size=8, layerscale_init=1e-6))

# Small models for tests and small images (digits, CIFAR-sized data). Not from the paper.
register_config(
    "resmlp_tiny", ResMLPConfig(embed_dim=32, depth=2, patch_size=4, img_size=16, num_classes=10, in_chans=3)
)
register_config("resmlp_mini", ResMLPConfig(embed_dim=128, depth=6, patch_size=4, img_size=32, num_classes=10))
register_config("resmlp_s12_32", ResMLPConfig(embed_dim=384, depth=12, patch_size=4, img_size=32, num_classes=10))
