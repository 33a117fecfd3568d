"""Inference and training speed of ResMLP-S12 (ours, plain and fused) against timm's ``resmlp_12_224``.

One run on one machine measures, with the same thread count for every model:

- the machine's matrix-product peak: a large fp32 and a bf16 product, each through ``torch.matmul`` and, on CPU,
  through oneDNN (the kernel our fast path calls); the faster of the two is the peak;
- inference images/s at batch 32, 224 px, in fp32 and under bf16 autocast;
- a training step (forward, cross-entropy, backward, AdamW) at batch 16 in fp32;
- the fraction of the peak each reaches, from the multiply-adds counted by ``resmlp.flops``;
- the goals of the foundation issue as ratios: fp32 inference >= 1.3x timm, bf16 inference >= 3.5x timm's fp32,
  training step >= 1.2x timm.

Models are timed in interleaved rounds (every model once per round) and each figure is the median over rounds,
so a change in machine load hits all models alike. Usage, from the repository root::

    python -m bench.inference --threads 2 --json outputs/bench_inference.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import resmlp
from resmlp.flops import model_stats

GOALS = {  # name: (numerator, denominator, minimum ratio)
    "fp32 inference, fused / timm": ("infer fp32 fused", "infer fp32 timm", 1.3),
    "bf16 inference, fused / timm fp32": ("infer bf16 fused", "infer fp32 timm", 3.5),
    "training step, ours / timm": ("train fp32 ours", "train fp32 timm", 1.2),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _median_rate(step: Callable[[], object], device: torch.device, items: int, iters: int, warmup: int) -> float:
    """Items per second of ``step``: the median over ``iters`` timed calls after ``warmup`` untimed ones."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
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
) -> float:
    """Inference images/s of ``model`` (eval mode, ``torch.inference_mode``) on random 3-channel images.

    Runs on the model's device; ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs it under autocast. The figure is
    the median over ``iters`` timed forward passes after ``warmup`` untimed ones.
    """
    device = _device_of(model)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    model.eval()

    def step() -> None:
        with torch.inference_mode(), _autocast(device, autocast_dtype):
            model(images)

    return _median_rate(step, device, batch_size, iters, warmup)


def time_train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    image_size: int,
    num_classes: int,
    *,
    iters: int,
    warmup: int,
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

    return _median_rate(step, device, batch_size, iters, warmup)


def matmul_peak(dtype: torch.dtype, device: torch.device, *, size: int = 4096, iters: int = 5) -> tuple[float, str]:
    """(FLOP/s, backend) of the faster of ``torch.matmul`` and oneDNN (CPU only) on a ``size``-cubed product."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    flops = 2 * size**3
    candidates = {"torch.matmul": lambda: torch.matmul(a, b)}
    onednn = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if device.type == "cpu" and onednn is not None and torch.backends.mkldnn.is_available():
        candidates["oneDNN"] = lambda: onednn(a, b, None, "none", [], "")  # a @ b^T: same cost
    rates = {name: _median_rate(fn, device, flops, iters, 1) for name, fn in candidates.items()}
    best = max(rates, key=rates.get)
    return rates[best], best


class _Unfolded(torch.nn.Module):
    """Our model run as the plain composition of its layers: (B, N, C) layout, Affine and LayerScale unfolded."""

    def __init__(self, model: resmlp.ResMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.forward_head(m.norm(m.blocks(m.patch_embed(x))))


class _WithoutOneDNN(_Unfolded):
    """Our fast path with oneDNN disabled, so its products go to torch's default kernels (MKL on CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The backward of these ops is ordinary autograd (the oneDNN autograd functions are not used), so turning
        # oneDNN off for the forward pass is enough.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a note about Intel GPUs that torch prints when the flags change
            with torch.backends.mkldnn.flags(enabled=False):
                return self.model(x)


def _timm_resmlp_12() -> torch.nn.Module:
    try:
        import timm
    except ImportError as err:
        raise SystemExit("bench.inference compares against timm: pip install timm") from err
    return timm.create_model("resmlp_12_224", pretrained=False)


def run(args: argparse.Namespace) -> dict:
    """Measure everything; return the results as a JSON-ready dict."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but torch sees no CUDA device; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = resmlp.create_model("resmlp_s12").to(device)
    timm_model = _timm_resmlp_12().to(device)
    fused = resmlp.fuse(ours.eval())
    _, macs = model_stats("resmlp_s12")  # per 224 px image; timm's resmlp_12_224 is the same network

    peaks = {name: matmul_peak(dtype, device) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    infer = {"timm": timm_model, "ours": ours, "fused": fused}
    train = {"timm": timm_model, "ours": ours}
    if args.ablation:
        # Where our speed comes from: the same weights without the folding and token-major layout, and the fast
        # path with oneDNN switched off (torch's default CPU GEMM then serves every product).
        infer.update({"ours-unfolded": _Unfolded(ours), "ours-no-onednn": _WithoutOneDNN(ours)})
        train.update({"ours-unfolded": _Unfolded(ours), "ours-no-onednn": _WithoutOneDNN(ours)})
    settings = [("fp32", None), ("bf16", torch.bfloat16)]
    rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for precision, dtype in settings:
            for name, model in infer.items():
                rate = time_inference(
                    model, args.batch_size, 224, iters=args.iters, warmup=args.warmup, autocast_dtype=dtype
                )
                rates.setdefault(f"infer {precision} {name}", []).append(rate)
        if args.train_iters:
            for name, model in train.items():
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                rate = time_train_step(
                    model, opt, args.train_batch_size, 224, 1000, iters=args.train_iters, warmup=args.warmup
                )
                rates.setdefault(f"train fp32 {name}", []).append(rate)
    results = {}
    for key, values in rates.items():
        kind, precision, _ = key.split()
        per_image_flops = 2 * macs * (3 if kind == "train" else 1)  # backward costs about twice the forward
        rate = statistics.median(values)
        results[key] = {
            "images_per_s": rate,
            "rounds": values,
            "tflops": rate * per_image_flops / 1e12,
            "fraction_of_peak": rate * per_image_flops / peaks[precision][0],
        }
    goals = {}
    for label, (num, den, minimum) in GOALS.items():
        if num in results and den in results:
            ratio = results[num]["images_per_s"] / results[den]["images_per_s"]
            goals[label] = {"ratio": ratio, "goal": minimum, "met": ratio >= minimum}
    return {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "timm": __import__("timm").__version__,
            "python": platform.python_version(),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "macs_per_image": macs,
        "matmul_peak_tflops": {k: {"tflops": v / 1e12, "backend": b} for k, (v, b) in peaks.items()},
        "results": results,
        "goals": goals,
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    return platform.processor() or "unknown CPU"


def format_report(report: dict) -> str:
    """The printed table: one row per measurement, then the goals."""
    m = report["machine"]
    lines = [f"{m['device']}, {m['threads']} threads, torch {m['torch']}, timm {m['timm']}"]
    for precision, peak in report["matmul_peak_tflops"].items():
        lines.append(f"matmul peak {precision}: {peak['tflops'] * 1e3:.0f} GFLOP/s ({peak['backend']})")
    timm_fp32 = report["results"].get("infer fp32 timm", {}).get("images_per_s")
    train_timm = report["results"].get("train fp32 timm", {}).get("images_per_s")
    lines.append(f"{'measurement':24s} {'images/s':>9s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs timm':>8s}")
    for key, r in report["results"].items():
        base = train_timm if key.startswith("train") else timm_fp32
        ratio = f"{r['images_per_s'] / base:.2f}x" if base else ""
        lines.append(
            f"{key:24s} {r['images_per_s']:9.1f} {r['tflops'] * 1e3:8.0f} {100 * r['fraction_of_peak']:6.1f}% "
            f"{ratio:>8s}"
        )
    lines.append("('vs timm': inference rows against timm fp32 inference, training rows against timm training)")
    for label, g in report["goals"].items():
        lines.append(f"goal {label}: {g['ratio']:.2f}x (>= {g['goal']}x) {'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=10, help="timed inference passes per model and round")
    parser.add_argument("--train-iters", type=int, default=5, help="timed training steps per round (0: skip)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes before each timing")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians over rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for every model (0: default)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="inference batch")
    parser.add_argument("--train-batch-size", type=int, default=16, help="training batch")
    parser.add_argument("--ablation", action="store_true", help="also time our model unfolded and without oneDNN")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run(args)
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
