"""One command that proves the project on a CUDA device: model checks, every task end to end, speed against timm.

    python -m bench.gpu                  # on a machine with a CUDA GPU, about 8 minutes on one GPU
    python -m bench.gpu --dry-run        # every stage at toy size on the CPU (what the test suite runs)

Three stages, each reporting pass or fail honestly:

1. ``checks`` (bench/gpu_checks.py): every model path on the device against the CPU fp32 reference: fp32 and bf16
   autocast, train and eval, the fused model, ``torch.compile``, channels_last input, and the fairseq model's
   encoder/decoder with its incremental decoding step;
2. ``tasks`` (bench/gpu_tasks.py): ``vision.train``, ``ssl_dino.train``, ``ssl_dino.knn`` (bank on the GPU) and
   ``fairseq-train``/``fairseq-generate`` (``--fp16``) end to end through their real launchers, short budgets;
3. ``speed`` (bench/gpu_speed.py): ResMLP-S12 inference (batch 256) and a training step (batch 128) in bf16, eager
   and compiled, beside timm's ``resmlp_12_224``, with the model FLOP utilisation against the device's bf16 peak.

The report goes to ``OUT_DIR/results.md`` (a markdown table, also printed) and ``OUT_DIR/results.json`` (every
figure); the exit code is 1 when any check fails. Speed goals are reported as met or not, they do not fail the run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from . import gpu_checks, gpu_speed, gpu_tasks
from .gpu_settings import Result, Settings

STAGES = ("checks", "tasks", "speed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every stage at toy size on the CPU (no GPU needed)")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench_gpu"), help="where the report goes")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's dense bf16 peak for the MFU (default: by name)"
    )
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        parser.error(f"--stages takes a comma-separated subset of {','.join(STAGES)}, got {args.stages!r}")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device is visible: run this on a GPU machine, or pass --dry-run for the CPU rehearsal")
    args.stages = stages
    return args


def environment(settings: Settings) -> dict:
    """What the numbers were measured on."""
    import accelerate
    import timm

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "accelerate": accelerate.__version__,
        "device": str(settings.device),
        "dry_run": settings.dry_run,
    }
    if settings.device.type == "cuda":
        info |= {"gpu": torch.cuda.get_device_name(settings.device), "cuda": torch.version.cuda}
    else:
        info |= {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    return info


def markdown(results: list[Result], info: dict, seconds: dict[str, float], settings: Settings) -> str:
    """The report: environment, one table row per result, the dry run's differences from the GPU run."""
    failed = [r for r in results if r.passed is False]
    title = (
        "bench.gpu DRY RUN (CPU, toy sizes: no figure here is a GPU measurement)" if settings.dry_run else "bench.gpu"
    )
    device = info.get("gpu") or f"CPU {info.get('cpu', '')} ({info.get('threads')} threads)"
    lines = [
        f"# {title}",
        "",
        f"{device}; torch {info['torch']}, timm {info['timm']}, accelerate {info['accelerate']}; "
        + ", ".join(f"{stage} {s:.0f} s" for stage, s in seconds.items())
        + f"; {'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}.",
        "",
        "| stage | what | result | detail |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.stage} | {r.name} | {r.status} | {r.detail.replace('|', '/')} |" for r in results]
    if settings.differences:
        lines += ["", "The dry run differs from the GPU run in these ways:", ""]
        lines += [f"- {text}" for text in settings.differences]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    make = Settings.dry if args.dry_run else Settings.gpu
    settings = make(args.out_dir, peak_tflops=args.peak_tflops)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    seconds: dict[str, float] = {}
    figures: dict = {}
    for stage in args.stages:
        start = time.perf_counter()
        print(f"bench.gpu: stage {stage} ...", flush=True)
        if stage == "checks":
            stage_results = gpu_checks.run(settings)
        elif stage == "tasks":
            stage_results = gpu_tasks.run(settings)
        else:
            stage_results, figures = gpu_speed.run(settings)
        seconds[stage] = time.perf_counter() - start
        for r in stage_results:
            print(f"  {r.status:8} {r.name}: {r.detail}", flush=True)
        results += stage_results
    info = environment(settings)
    report = markdown(results, info, seconds, settings)
    (settings.out_dir / "results.md").write_text(report)
    payload = {
        "environment": info,
        "seconds": seconds,
        "results": [vars(r) | {"status": r.status} for r in results],
        "speed": figures,
        "dry_run_differences": list(settings.differences),
    }
    (settings.out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(report)
    return 1 if any(r.passed is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
