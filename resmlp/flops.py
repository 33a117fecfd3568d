"""Parameter and multiply-add counts, measured on the real model's operations.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass (matrix products
and convolutions; elementwise work such as Affine or GELU is not counted, as in the paper). The model is built
on the ``meta`` device, so even B24/8 is counted instantly and without memory.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import fast
from .config import ResMLPConfig
from .model import ResMLP
from .registry import get_config

# The paper's figures at 224 px and 1000 classes (Tables 1, 3 and D.3): (params in millions, GMACs).
PAPER_STATS: dict[str, tuple[float, float]] = {
    "resmlp_s12": (15.4, 3.0),
    "resmlp_s24": (30.0, 6.0),
    "resmlp_s36": (44.7, 8.9),
    "resmlp_b24": (115.7, 23.0),
    "resmlp_b24_8": (129.1, 100.2),
}

# The ablations' figures (Table 3, Table D.3): (preset, ResMLPConfig overrides, params in millions, GMACs).
PAPER_ABLATION_STATS: list[tuple[str, dict, float, float]] = [
    ("resmlp_s12", {"global_pool": "class_mlp"}, 17.7, 3.0),
    ("resmlp_s24", {"global_pool": "class_mlp"}, 32.4, 6.0),
    ("resmlp_s36", {"global_pool": "class_mlp"}, 47.1, 8.9),
    ("resmlp_s12", {"token_mixer": "mlp"}, 18.6, 4.3),
    ("resmlp_s12", {"token_mixer": "conv3x3"}, 30.8, 6.0),
    ("resmlp_s12", {"token_mixer": "dwconv3x3"}, 14.9, 2.8),
    ("resmlp_s12", {"token_mixer": "separable"}, 16.7, 3.2),
    ("resmlp_s12", {"token_mixer": "none"}, 14.9, 2.8),
    ("resmlp_s12", {"norm": "layernorm"}, 15.4, 3.0),
    ("resmlp_s12_14", {}, 15.6, 4.0),
    ("resmlp_s12_8", {}, 22.1, 14.0),
]


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on an input of ``input_shape`` (batch included).

    A ``ResMLP`` is counted on its reference formulation (the architecture's cost, as the paper counts it); the
    fast path's folded token product adds one row for the token bias (N + 1 instead of N per channel).
    """
    device = next(model.parameters()).device
    x = torch.empty(input_shape, device=device)
    counter = FlopCounterMode(display=False)
    # Parameters are frozen while counting: the counter's module tracker hooks the autograd graph of any input that
    # requires grad, and a parameter's view (Class-MLP's class token) would be one without a graph.
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with torch.no_grad(), fast.disabled(), counter:
            model(x)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return counter.get_total_flops() // 2


def model_stats(config: ResMLPConfig | str) -> tuple[int, int]:
    """(parameters, MACs per image) of a config or preset name, computed on the meta device."""
    if isinstance(config, str):
        config = get_config(config)
    with torch.device("meta"):
        model = ResMLP(config)
    height, width = config.image_hw
    return count_params(model), count_macs(model, (1, config.in_chans, height, width))
