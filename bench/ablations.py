"""The paper's ablations at small scale: every architectural variant trained on the built-in procedural data at an
equal budget, then a table and a plot of accuracy against multiply-adds.

    python -m bench.ablations --jobs 2 --threads 1 --epochs 8 --train-size 10000 --out-dir outputs/bench_ablations

Each variant is ``recipes/vision/resmlp_procedural.yaml`` (resmlp_mini, 32 px, 10,000 training images, 12
classes) with one ``model.*`` field changed and the schedule cut to ``--epochs`` (same data, same steps, same
seed for every variant). The paper's patch-size rows need another preset and are not part of this sweep. Writes
``ablations.md``, ``ablations.json`` and ``ablations.png`` under ``--out-dir``; results go to docs/benchmarks.md by
hand. Run it alone on the machine: the times are wall-clock. ``--jobs 2 --threads 1`` trains two variants at once,
one thread each: on 2 cores that is an estimated 1.35x the images per second of one run on 2 threads (resmlp_mini's
64-token products are too small to split well across threads).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import resmlp
from resmlp.flops import model_stats
from trainkit import load_recipe
from vision.recipe import VisionRecipe
from vision.train import train

from .report import emit_json

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "vision" / "resmlp_procedural.yaml"

# (label, model.* overrides); the first row is the released architecture.
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("linear (paper)", {}),
    ("norm: layernorm", {"norm": "layernorm"}),
    ("norm: batchnorm", {"norm": "batchnorm"}),
    ("pool: class_mlp", {"global_pool": "class_mlp"}),
    ("mixer: none", {"token_mixer": "none"}),
    ("mixer: mlp", {"token_mixer": "mlp"}),
    ("mixer: conv3x3", {"token_mixer": "conv3x3"}),
    ("mixer: dwconv3x3", {"token_mixer": "dwconv3x3"}),
    ("mixer: separable", {"token_mixer": "separable"}),
    ("act: relu", {"act": "relu"}),
    ("act: silu", {"act": "silu"}),
    ("act: hardswish", {"act": "hardswish"}),
]


def run_variant(
    label: str, fields: dict[str, str], epochs: int, train_size: int, out_dir: Path, threads: int = 0
) -> dict:
    if threads:
        torch.set_num_threads(threads)
    overrides = [f"model.{k}={v}" for k, v in fields.items()]
    settings = [
        f"schedule.epochs={epochs}",
        "schedule.warmup_epochs=1",
        f"data.procedural_train_size={train_size}",
        "run.tensorboard=false",
        "run.resume=off",
    ]
    cfg = load_recipe(VisionRecipe, RECIPE, [*settings, *overrides])
    config = resmlp.get_config(
        cfg.model.name, img_size=cfg.model.img_size, num_classes=12, **cfg.model.variant_overrides()
    )
    params, macs = model_stats(config)
    run_dir = out_dir / "runs" / slug(label)
    shutil.rmtree(run_dir, ignore_errors=True)  # the sweep owns its run folders: every variant starts afresh
    start = time.perf_counter()
    metrics = train(cfg, run_dir)
    seconds = time.perf_counter() - start
    row = {"variant": label, "fields": fields, "top1": metrics.get("top1"), "params": params, "macs": macs}
    print(
        f"{label:20s} top-1 {row['top1']:6.2f}%  {params / 1e6:5.2f}M  {macs / 1e6:6.1f} MMACs  {seconds:5.0f} s",
        flush=True,
    )
    row = {**row, "seconds": seconds, "epochs": epochs, "train_size": train_size}
    emit_json(row, out_dir / "rows" / f"{slug(label)}.json")  # kept as it finishes: a stopped sweep loses no row
    return row


def slug(label: str) -> str:
    """A file name for a variant: ``"norm: layernorm"`` -> ``norm_layernorm``, ``"linear (paper)"`` -> ``paper``."""
    return "paper" if label == VARIANTS[0][0] else label.replace(": ", "_").replace(" ", "_")


def finished_row(label: str, epochs: int, train_size: int, out_dir: Path) -> dict | None:
    """The row a previous run of the sweep wrote for ``label`` at the same budget, if any (``--reuse``)."""
    path = out_dir / "rows" / f"{slug(label)}.json"
    if not path.is_file():
        return None
    row = json.loads(path.read_text())
    return row if (row.get("epochs"), row.get("train_size")) == (epochs, train_size) else None


def evaluations(out_dir: Path, label: str) -> list[dict]:
    """Every evaluation the variant's run logged (``runs/<variant>/metrics.jsonl``), in order."""
    path = out_dir / "runs" / slug(label) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def write_table(rows: list[dict], epochs: int, train_size: int, out_dir: Path) -> None:
    """``ablations.md``: final top-1, the top-1 of every earlier evaluation (how fast it learns), cost and time."""
    lines = [
        f"| variant (resmlp_mini, procedural 32 px, {train_size} images x {epochs} epochs) | top-1 | earlier "
        "evaluations | final train loss | params | MMACs | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        logged = evaluations(out_dir, r["variant"])
        earlier = ", ".join(f"{e['top1']:.1f}% (epoch {e['epoch'] + 1})" for e in logged[:-1]) or "-"
        loss = f"{logged[-1]['train_loss']:.3f}" if logged else "-"
        cost = f"{r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.1f}"
        lines.append(f"| {r['variant']} | {r['top1']:.2f}% | {earlier} | {loss} | {cost} | {r['seconds']:.0f} s |")
    (out_dir / "ablations.md").write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in rows:
        ax.scatter(r["macs"] / 1e6, r["top1"], color="tab:red" if not r["fields"] else "tab:blue")
        ax.annotate(r["variant"], (r["macs"] / 1e6, r["top1"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("multiply-adds per image (millions)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("ResMLP ablations at small scale (built-in procedural data, equal budget)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs per variant (the equal budget)")
    parser.add_argument("--train-size", type=int, default=10000, help="procedural training images (recipe: 10,000)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, each in its own process")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the rows an earlier sweep wrote at the same budget (rows/*.json)"
    )
    parser.add_argument("--only", nargs="*", help="labels of the variants to run (default: all)")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench_ablations"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only]
    done = {label: finished_row(label, args.epochs, args.train_size, args.out_dir) for label, _ in chosen}
    done = {label: row for label, row in done.items() if row is not None and args.reuse}
    todo = [(label, fields, args.epochs, args.train_size, args.out_dir, args.threads) for label, fields in chosen]
    todo = [job for job in todo if job[0] not in done]
    if args.jobs > 1 and len(todo) > 1:
        # spawn, not fork: each worker starts its own torch thread pool with --threads threads.
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done.update(zip([job[0] for job in todo], pool.map(run_variant, *zip(*todo))))
    else:
        done.update((job[0], run_variant(*job)) for job in todo)
    rows = [done[label] for label, _ in chosen]
    write_table(rows, args.epochs, args.train_size, args.out_dir)
    plot(rows, args.out_dir / "ablations.png")
    emit_json(
        {"epochs": args.epochs, "threads": torch.get_num_threads(), "jobs": args.jobs, "rows": rows},
        args.out_dir / "ablations.json",
    )
    print(f"wrote {args.out_dir / 'ablations.md'}, ablations.png and ablations.json")
    return rows


if __name__ == "__main__":
    main()
