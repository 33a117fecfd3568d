"""The activations of the paper's ablation (its exploration in section 3.3): GELU (the released models), ReLU,
SiLU and HardSwish, by name."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "hardswish": nn.Hardswish}


def activation(name: str) -> type[nn.Module]:
    """The activation class called ``name``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown act {name!r}; choose one of {tuple(ACTIVATIONS)}")
    return ACTIVATIONS[name]
