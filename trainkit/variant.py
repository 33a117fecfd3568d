"""The paper's architectural ablations as recipe keys, shared by the vision and DINO ``model:`` sections.

``token_mixer``, ``token_mlp_ratio``, ``norm``, ``act`` and ``global_pool`` are ``resmlp.ResMLPConfig`` fields
(docs/architecture.md, "The paper's ablations"); a recipe section that inherits ``ArchitectureVariant`` takes
them as YAML keys, validated here, and hands the non-default ones to ``resmlp.create_model``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from resmlp.config import GLOBAL_POOLS
from resmlp.layers.activations import ACTIVATIONS
from resmlp.layers.norms import NORMS
from resmlp.layers.token_mixers import TOKEN_MIXERS


@dataclass(frozen=True)
class ArchitectureVariant:
    """Which variant of the ResMLP architecture to build (the paper's values are the defaults).

    Attributes:
        token_mixer: linear (the paper), mlp, conv3x3, dwconv3x3, separable or none (Table 3, patch communication).
        token_mlp_ratio: Expansion of the ``mlp`` token mixer (4).
        norm: affine (the paper), layernorm or batchnorm.
        act: gelu (the paper), relu, silu or hardswish.
        global_pool: avg (the paper) or class_mlp (Class-MLP pooling).
    """

    token_mixer: str = "linear"
    token_mlp_ratio: float = 4.0
    norm: str = "affine"
    act: str = "gelu"
    global_pool: str = "avg"

    def __post_init__(self) -> None:
        choices = {
            "token_mixer": TOKEN_MIXERS,
            "norm": tuple(NORMS),
            "act": tuple(ACTIVATIONS),
            "global_pool": tuple(p for p in GLOBAL_POOLS if p),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} {getattr(self, name)!r} is unknown; choose one of {', '.join(allowed)}")
        if self.token_mlp_ratio <= 0:
            raise ValueError(f"model.token_mlp_ratio must be positive, got {self.token_mlp_ratio}")

    def variant_overrides(self) -> dict[str, Any]:
        """The variant fields that differ from the paper's architecture, as ``create_model`` keywords."""
        return {
            f.name: getattr(self, f.name) for f in fields(ArchitectureVariant) if getattr(self, f.name) != f.default
        }
