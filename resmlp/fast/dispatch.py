"""When the fast path serves, and the switch that turns it off.

The fast path (folded weights, token-major layout, oneDNN kernels) serves a ``ResMLP`` of the released
architecture in eager mode on CPU, in fp32 or bf16 (autocast included; bf16 where the CPU has bf16 instructions),
with oneDNN on. It steps aside by itself
under ``torch.jit`` scripting and tracing, ``torch.fx`` symbolic tracing, ONNX export, ``torch.export`` and
``torch.compile`` (which all see the reference formulation in ``resmlp/model.py``), on other devices and dtypes,
and for gradient checkpointing. Turn it off with ``RESMLP_FAST_PATH=0`` in the environment,
``resmlp.fast.set_enabled(False)``, or ``with resmlp.fast.disabled(): ...``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

from ..layers import Affine, ChannelMLP, CrossPatchLinear, PatchEmbed, PreAffineResidual, ResMLPBlock
from .gemm import compute_dtype, onednn_available, onednn_dtypes

_enabled = os.environ.get("RESMLP_FAST_PATH", "1").strip().lower() not in ("0", "false", "off", "no")


def is_enabled() -> bool:
    """Whether the fast path may run at all (``RESMLP_FAST_PATH`` / ``set_enabled``)."""
    return _enabled


def set_enabled(enabled: bool) -> None:
    """Allow (True) or forbid (False) the fast path for the whole process."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the reference formulation inside the block, whatever the setting outside."""
    previous = _enabled
    set_enabled(False)
    try:
        yield
    finally:
        set_enabled(previous)


def _tracing() -> bool:
    """Whether a tracer, scripter, exporter or compiler is recording the model."""
    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def released_architecture(model: nn.Module) -> bool:
    """The structure the folding algebra covers (users may replace modules, e.g. timm's pruning)."""
    return (
        type(model.patch_embed) is PatchEmbed
        and type(model.norm) is Affine
        and len(model.blocks) > 0
        and all(
            type(b) is ResMLPBlock
            and type(b.token_mix) is PreAffineResidual
            and type(b.token_mix.norm) is Affine
            and type(b.token_mix.op) is CrossPatchLinear
            and type(b.channel_mix.norm) is Affine
            and type(b.channel_mix.op) is ChannelMLP
            and type(b.channel_mix.op.act) is nn.GELU
            and b.channel_mix.op.act.approximate == "none"
            for b in model.blocks
        )
    )


def serves(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model.forward_features(x)`` should take the fast path."""
    if not _enabled or isinstance(x, torch.fx.Proxy) or _tracing():
        return False
    # Fake, functional and other tensor subclasses mean a tracer (e.g. non-strict torch.export) is at work.
    if type(x) is not torch.Tensor or x.device.type != "cpu" or not onednn_available():
        return False
    if model.grad_checkpointing and torch.is_grad_enabled():
        return False
    dtypes = onednn_dtypes()
    return released_architecture(model) and compute_dtype(x) in dtypes and model.norm.alpha.dtype in dtypes
