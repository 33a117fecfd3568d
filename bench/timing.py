"""Timing helpers of the speed benchmarks: images/s of inference and of a training step, and a matmul peak.

Every figure is the median over timed calls after untimed warm-up calls; CUDA work is synchronised before a clock
is read. ``time_inference`` is also what ``make demo`` uses for its short speed comparison.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

# wall: elapsed time, the real throughput. cpu: process CPU time, which other jobs on a shared machine disturb
# much less (with one thread it is images per core-second).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _median_rate(
    step: Callable[[], object],
    device: torch.device,
    items: int,
    iters: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Items per second of ``step``: the median over ``iters`` timed calls after ``warmup`` untimed ones."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        start = clock()
        step()
        _sync(device)
        times.append(clock() - start)
    return items / statistics.median(times)


def _device_of(model: torch.nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers())
    return tensor.device


def time_inference(
    model: torch.nn.Module,
    batch_size: int,
    image_size: int,
    *,
    iters: int,
    warmup: int,
    autocast_dtype: torch.dtype | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Inference images/s of ``model`` (eval mode, ``torch.inference_mode``) on random 3-channel images.

    Runs on the model's device; ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs it under autocast. The figure is
    the median over ``iters`` timed forward passes after ``warmup`` untimed ones. ``clock`` is wall time by
    default; ``time.process_time`` gives images per CPU-second instead (see ``--clock``).
    """
    device = _device_of(model)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    model.eval()

    def step() -> None:
        with torch.inference_mode(), _autocast(device, autocast_dtype):
            model(images)

    return _median_rate(step, device, batch_size, iters, warmup, clock)


def time_train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    image_size: int,
    num_classes: int,
    *,
    iters: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Training images/s: forward, cross-entropy, backward and one optimizer step per batch (median over iters)."""
    device = _device_of(model)
    gen = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=gen).to(device)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return _median_rate(step, device, batch_size, iters, warmup, clock)


def matmul_peak(
    dtype: torch.dtype,
    device: torch.device,
    *,
    size: int = 4096,
    iters: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, str]:
    """(FLOP/s, backend) of the faster of ``torch.matmul`` and oneDNN (CPU only) on a ``size``-cubed product."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    flops = 2 * size**3
    candidates = {"torch.matmul": lambda: torch.matmul(a, b)}
    onednn = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if device.type == "cpu" and onednn is not None and torch.backends.mkldnn.is_available():
        candidates["oneDNN"] = lambda: onednn(a, b, None, "none", [], "")  # a @ b^T: same cost
    rates = {name: _median_rate(fn, device, flops, iters, 1, clock) for name, fn in candidates.items()}
    best = max(rates, key=rates.get)
    return rates[best], best
