"""The two matrix products of the ResMLP fast path, with their bias, GELU and residual add fused where possible.

On CPU they call oneDNN (``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile`` itself emits for
CPU linears) instead of ``F.linear``/``torch.mm``, which go to MKL. On the machines we measured, MKL's fp32 GEMM
reaches about half of oneDNN's speed on these shapes (see docs/benchmarks.md), and oneDNN can also apply the bias,
the GELU and the residual add while the output tile is still in registers. The backward products of training go
through the same kernel (custom autograd functions below). Anywhere else (CUDA, other dtypes, a torch without the
op, or ``torch.backends.mkldnn.flags(enabled=False)``) the plain torch formulation runs; it is the reference.

Autocast is honoured by hand because the oneDNN op is not on autocast's lists: under autocast every operand is
cast to the autocast dtype first, as ``F.linear`` would be.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

_ONEDNN_OPS = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
# bf16 only where the CPU has native bf16 instructions (oneDNN refuses bf16 products elsewhere, e.g. on AVX2).
_ONEDNN_DTYPES = (torch.float32, torch.bfloat16) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else (torch.float32,)


if _ONEDNN_OPS is not None:
    # Teach FlopCounterMode (and so resmlp.flops.count_macs on a CPU model) the cost of the oneDNN products.
    @register_flop_formula(_ONEDNN_OPS)
    def _onednn_linear_flops(x_shape, *args, **kwargs) -> int:
        # default overload: (X, W, B, attr, ...); binary overload: (X, other, W, B, attr).
        w_shape = args[0] if isinstance(args[2], str) else args[1]
        rows = 1
        for size in x_shape[:-1]:
            rows *= size
        return 2 * rows * x_shape[-1] * w_shape[0]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the matrix products run in: the autocast dtype inside an autocast region, else ``x.dtype``."""
    device = x.device.type
    if x.is_floating_point() and torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def autocast_disabled(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context that turns autocast off for ``x``'s device type, if autocast is on there."""
    device = x.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


def onednn_dtypes() -> tuple[torch.dtype, ...]:
    """The dtypes the oneDNN kernels compute in on this machine."""
    return _ONEDNN_DTYPES


def onednn_available() -> bool:
    """Whether this torch has the oneDNN linear op and oneDNN is enabled (``torch.backends.mkldnn.flags``)."""
    return _ONEDNN_OPS is not None and torch._C._get_mkldnn_enabled()


def use_onednn(x: torch.Tensor) -> bool:
    """Whether the oneDNN kernels serve tensors like ``x`` (CPU, fp32 or bf16, oneDNN enabled, eager mode).

    Under ``torch.compile`` or a tracer the plain formulation is recorded instead: inductor only lowers this oneDNN
    op for frozen (constant) weights, and it fuses the elementwise work around the products by itself.
    """
    return (
        onednn_available()
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and type(x) is torch.Tensor
        and x.device.type == "cpu"
        and x.dtype in _ONEDNN_DTYPES
    )


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False) -> torch.Tensor:
    # x (M, K) @ weight (N, K)^T + bias; either operand may be a strided (e.g. transposed) view.
    return _ONEDNN_OPS(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")


def _onednn_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor:
    # other + x @ weight^T + bias, the add done by the GEMM's epilogue.
    return _ONEDNN_OPS.binary(x, other, weight, bias, "add")


class _OneDNNLinear(torch.autograd.Function):
    """``residual + x @ weight^T + bias`` with oneDNN in both passes (x is (M, K), weight (N, K))."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if residual is None:
            return _onednn(x, weight, bias)
        return _onednn_add(x, weight, bias, residual)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = _onednn(grad, weight.t(), None) if ctx.needs_input_grad[0] else None
        # (N, M) @ (M, K): both operands are transposed views, which oneDNN reads without a copy.
        grad_w = _onednn(grad.t(), x.t(), None) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        grad_r = grad if ctx.needs_input_grad[3] else None
        return grad_x, grad_w, grad_b, grad_r


class _OneDNNLeftMatmul(torch.autograd.Function):
    """``residual + a @ v`` with oneDNN in both passes (a is a small (N, K) matrix, v a wide (K, M) one)."""

    @staticmethod
    def forward(ctx, a, v, residual):
        ctx.save_for_backward(a, v)
        # a @ v is the linear map with input a and weight v^T; v^T is a view, so v is never copied.
        if residual is None:
            return _onednn(a, v.t(), None)
        return _onednn_add(a, v.t(), None, residual)

    @staticmethod
    def backward(ctx, grad):
        a, v = ctx.saved_tensors
        grad_a = _onednn(grad, v, None) if ctx.needs_input_grad[0] else None
        grad_v = _onednn(a.t(), grad.t(), None) if ctx.needs_input_grad[1] else None
        grad_r = grad if ctx.needs_input_grad[2] else None
        return grad_a, grad_v, grad_r


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will record an op on these tensors."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    gelu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``residual + act(x @ weight^T + bias)`` for a 2-D ``x`` of shape (M, K); ``act`` is exact GELU or identity.

    All operands must already be in one dtype (see ``compute_dtype``). GELU and a residual together are not
    needed by ResMLP and are refused.
    """
    if gelu and residual is not None:
        raise ValueError("linear() fuses either gelu or a residual add, not both")
    if not use_onednn(x):
        out = F.linear(x, weight, bias)
        if gelu:
            return F.gelu(out)
        return out if residual is None else residual + out
    if needs_grad(x, weight, bias, residual):
        # Training keeps the pre-activation for GELU's backward, so the GELU runs as its own autograd op.
        out = _OneDNNLinear.apply(x, weight, bias, residual)
        return F.gelu(out) if gelu else out
    if residual is not None:
        return _onednn_add(x, weight, bias, residual)
    return _onednn(x, weight, bias, gelu)


def left_matmul(a: torch.Tensor, v: torch.Tensor, *, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``residual + a @ v`` for a small matrix ``a`` (N, K) and a wide ``v`` (K, M): the token-mixing product."""
    if not use_onednn(v):
        return torch.mm(a, v) if residual is None else torch.addmm(residual, a, v)
    if needs_grad(a, v, residual):
        return _OneDNNLeftMatmul.apply(a, v, residual)
    if residual is None:
        return _onednn(a, v.t(), None)
    return _onednn_add(a, v.t(), None, residual)


# Rows of the channel MLP processed at once by ``mlp_residual_``: the (rows, hidden) activation of one chunk stays
# near this many bytes, small enough to stay in cache between fc1 and fc2 and to be reused by the allocator.
MLP_CHUNK_BYTES = 3 << 20


def mlp_residual_(
    x: torch.Tensor, fc1_weight: torch.Tensor, fc1_bias: torch.Tensor, fc2_weight: torch.Tensor, fc2_bias: torch.Tensor
) -> torch.Tensor:
    """``x += fc2(gelu(fc1(x)))`` in place on a 2-D ``x`` (M, C), for inference; returns ``x``.

    With oneDNN the rows go through in chunks: the full (M, hidden) activation (38 MB for ResMLP-S12 at batch 32)
    is never materialised, so it is neither written to and re-read from memory nor freshly allocated (page
    faults on a new large buffer cost as much as a sizeable share of the products themselves on the machines we
    measured). Elsewhere it is the plain formulation.
    """
    if needs_grad(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias):
        raise RuntimeError("mlp_residual_ is an in-place inference kernel; call it with gradients disabled")
    if not use_onednn(x):
        return x.add_(F.linear(F.gelu(F.linear(x, fc1_weight, fc1_bias)), fc2_weight, fc2_bias))
    step = max(64, MLP_CHUNK_BYTES // (fc1_weight.shape[0] * x.element_size()))
    for start in range(0, x.shape[0], step):
        rows = x[start : start + step]
        rows.copy_(_onednn_add(_onednn(rows, fc1_weight, fc1_bias, gelu=True), fc2_weight, fc2_bias, rows))
    return x
