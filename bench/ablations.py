"""The paper's ablations at small scale: every architectural variant trained on the built-in procedural data at an
equal budget, then a table and a plot of accuracy against multiply-adds.

    python -m bench.ablations --threads 2 --epochs 4 --train-size 10000 --out-dir outputs/bench_ablations

Each variant is ``recipes/vision/resmlp_procedural.yaml`` (resmlp_mini, 32 px, 10,000 training images, 12
classes) with one ``model.*`` field changed and the schedule cut to ``--epochs`` (same data, same steps, same
seed for every variant). The paper's patch-size rows need another preset and are not part of this sweep. Writes
``ablations.md``, ``ablations.json`` and ``ablations.png`` under ``--out-dir``; results go to docs/benchmarks.md by
hand. Run it alone on the machine: the times are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import time
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


def run_variant(label: str, fields: dict[str, str], epochs: int, train_size: int, out_dir: Path) -> dict:
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
    run_dir = out_dir / ("runs/" + (label.replace(": ", "_").replace(" ", "_").strip("()") or "paper"))
    start = time.perf_counter()
    metrics = train(cfg, run_dir)
    seconds = time.perf_counter() - start
    row = {"variant": label, "fields": fields, "top1": metrics.get("top1"), "params": params, "macs": macs}
    print(f"{label:20s} top-1 {row['top1']:6.2f}%  {params / 1e6:5.2f}M  {macs / 1e6:6.1f} MMACs  {seconds:5.0f} s")
    return {**row, "seconds": seconds}


def write_table(rows: list[dict], epochs: int, train_size: int, path: Path) -> None:
    lines = [
        f"| variant (resmlp_mini, procedural 32 px, {train_size} images x {epochs} epochs) | top-1 | params | MMACs "
        "| train time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cost = f"{r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.1f}"
        lines.append(f"| {r['variant']} | {r['top1']:.2f}% | {cost} | {r['seconds']:.0f} s |")
    path.write_text("\n".join(lines) + "\n")


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
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (the equal budget)")
    parser.add_argument("--train-size", type=int, default=10000, help="procedural training images (recipe: 10,000)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    parser.add_argument("--only", nargs="*", help="labels of the variants to run (default: all)")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench_ablations"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only]
    rows = [run_variant(label, fields, args.epochs, args.train_size, args.out_dir) for label, fields in chosen]
    write_table(rows, args.epochs, args.train_size, args.out_dir / "ablations.md")
    plot(rows, args.out_dir / "ablations.png")
    emit_json(
        {"epochs": args.epochs, "threads": torch.get_num_threads(), "rows": rows}, args.out_dir / "ablations.json"
    )
    print(f"wrote {args.out_dir / 'ablations.md'}, ablations.png and ablations.json")
    return rows


if __name__ == "__main__":
    main()
