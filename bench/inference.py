"""Inference and training speed of ResMLP-S12 (ours, plain and fused) against timm's ``resmlp_12_224``.

One run on one machine measures, with the same thread count for every model:

- the machine's matrix-product peak: a large fp32 and a bf16 product, each through ``torch.matmul`` and, on CPU,
  through oneDNN (the kernel our fast path calls); the faster of the two is the peak;
- inference images/s at batch 32, 224 px, in fp32 and under bf16 autocast;
- a training step (forward, cross-entropy, backward, AdamW) at batch 16 in fp32;
- the fraction of the peak each reaches, from the multiply-adds counted by ``resmlp.flops``;
- the goals as ratios: fp32 inference >= 2.3x timm, bf16 inference >= 4.5x timm's fp32, training step >= 1.8x
  timm (bf16 needs a CPU with bf16 instructions: elsewhere oneDNN refuses bf16 and the reference formulation runs).

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
from pathlib import Path

import torch

import resmlp
from resmlp.flops import model_stats

from .timing import CLOCKS, matmul_peak, time_inference, time_train_step

__all__ = ["main", "matmul_peak", "run", "time_inference", "time_train_step"]

GOALS = {  # name: (numerator, denominator, minimum ratio)
    "fp32 inference, ours / timm": ("infer fp32 ours", "infer fp32 timm", 2.3),
    "fp32 inference, fused / timm": ("infer fp32 fused", "infer fp32 timm", 2.3),
    "bf16 inference, fused / timm fp32": ("infer bf16 fused", "infer fp32 timm", 4.5),
    "training step, ours / timm": ("train fp32 ours", "train fp32 timm", 1.8),
}


class _Reference(torch.nn.Module):
    """Our model with the fast path switched off: the readable formulation of ``resmlp/model.py`` runs."""

    def __init__(self, model: resmlp.ResMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with resmlp.fast.disabled():
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

    clock = CLOCKS[args.clock]
    precisions = (("fp32", torch.float32), ("bf16", torch.bfloat16))
    precisions = tuple(p for p in precisions if p[0] in args.precisions or p[0] == "fp32")  # fp32: training
    peaks = {name: matmul_peak(dtype, device, clock=clock) for name, dtype in precisions}
    infer = {"timm": timm_model, "ours": ours, "fused": fused}
    train = {"timm": timm_model, "ours": ours}
    ablation = {}
    if args.ablation:
        # Where our speed comes from (fp32 only): the same weights through the reference formulation.
        ablation = {"ours-reference": _Reference(ours)}
        train.update(ablation)
    settings = [("fp32", None, {**infer, **ablation}), ("bf16", torch.bfloat16, infer)]
    settings = [s for s in settings if s[0] in args.precisions]
    rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for precision, dtype, models in settings:
            for name, model in models.items():
                rate = time_inference(
                    model, args.batch_size, 224, iters=args.iters, warmup=args.warmup, autocast_dtype=dtype, clock=clock
                )
                rates.setdefault(f"infer {precision} {name}", []).append(rate)
        if args.train_iters:
            for name, model in train.items():
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                batch = args.train_batch_size
                rate = time_train_step(
                    model, opt, batch, 224, 1000, iters=args.train_iters, warmup=args.warmup, clock=clock
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
    clock = report["settings"]["clock"]
    lines = [f"{m['device']}, {m['threads']} threads, torch {m['torch']}, timm {m['timm']}, {clock} clock"]
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
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time (the real throughput); cpu: process CPU time, which other jobs on a shared machine "
        "disturb much less; use it with --threads 1, where it is images per core-second",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16"],
        default=["fp32", "bf16"],
        help="inference precisions to time (bf16 is meaningful only on a CPU with bf16 instructions)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="inference batch")
    parser.add_argument("--train-batch-size", type=int, default=16, help="training batch")
    parser.add_argument("--ablation", action="store_true", help="also time our model with the fast path off")
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
