"""Benchmark of vision training on the built-in data: accuracy supervised vs distilled, time to accuracy, throughput.

    python -m bench.vision --threads 2                       # digits and procedural, everything
    python -m bench.vision --datasets digits --json out.json

For each dataset it (1) trains the recipe's timm CNN teacher with ``bench/train_teacher.py`` when its weights file
is missing, (2) runs ``recipes/vision/resmlp_<dataset>.yaml`` and ``..._dist.yaml`` through ``vision.train.train``
with an evaluation after every epoch, timing each evaluation from the start of training (model set-up, training
and evaluations included; Python start-up and imports excluded), and (3) measures throughput in images/s: the data
pipeline alone (the training loader, augmentation included), one training step on a batch already in memory
(forward, loss, backward, optimiser), and with the teacher's forward for distillation. Run it on a quiet machine:
the numbers are wall-clock. Results go to ``docs/benchmarks.md`` by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

import torch

from trainkit import build_optimizer, load_recipe, read_jsonl
from vision.builders import build_model, build_training_loss
from vision.data import build_loaders
from vision.evaluate import evaluate
from vision.recipe import VisionRecipe
from vision.teacher import load_teacher
from vision.train import resmlp_img_size, train

from .report import emit_json
from .train_teacher import train_teacher

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"digits": 98.0, "procedural": 95.0}  # top-1 (%) for "time to accuracy"
TEACHER_EPOCHS = {"digits": 15, "procedural": 10}


def recipe(dataset: str, distilled: bool, *overrides: str) -> VisionRecipe:
    name = f"resmlp_{dataset}{'_dist' if distilled else ''}.yaml"
    return load_recipe(VisionRecipe, REPO / "recipes" / "vision" / name, ["run.tensorboard=false", *overrides])


def loaders_of(cfg: VisionRecipe, num_workers: int | None = None):
    return build_loaders(
        cfg.data,
        cfg.augment,
        cfg.eval,
        img_size=cfg.model.img_size or resmlp_img_size(cfg),
        batch_size=cfg.run.batch_size,
        world_size=1,
        rank=0,
        seed=cfg.run.seed,
        num_workers=cfg.run.num_workers if num_workers is None else num_workers,
    )


def timed_training(cfg: VisionRecipe, out: Path) -> dict:
    """Train ``cfg`` into ``out``; every evaluation record with the seconds since the start when it was written."""
    shutil.rmtree(out, ignore_errors=True)
    path, seen, stamps, done = out / "metrics.jsonl", 0, [], threading.Event()
    start = time.perf_counter()

    def watch() -> None:  # polls metrics.jsonl: an evaluation's time is when its line appears
        nonlocal seen
        while not done.wait(0.2):
            if path.exists():
                lines = path.read_text().count("\n")
                stamps.extend([time.perf_counter() - start] * (lines - seen))
                seen = lines

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    train(cfg, out)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    records = read_jsonl(path)
    stamps += [wall] * (len(records) - len(stamps))
    evals = [{"epoch": r["epoch"], "top1": r["top1"], "seconds": t} for r, t in zip(records, stamps, strict=True)]
    return {"top1": records[-1]["top1"], "seconds": wall, "evals": evals, "load_after": os.getloadavg()[0]}


def time_to(evals: list[dict], target: float) -> dict | None:
    """The first evaluation at or above ``target`` top-1 (epoch and seconds), or None."""
    return next(({"epoch": e["epoch"], "seconds": e["seconds"]} for e in evals if e["top1"] >= target), None)


def loader_throughput(cfg: VisionRecipe, epochs: int = 2) -> float:
    """Images/s of the training loader alone (decode-free in-memory images, augmentation, collation)."""
    loaders = loaders_of(cfg)
    count, start = 0, time.perf_counter()
    for epoch in range(epochs):
        loaders.set_epoch(epoch)
        for images, _ in loaders.train:
            count += len(images)
    return count / (time.perf_counter() - start)


def step_throughput(cfg: VisionRecipe, steps: int = 30, warmup: int = 5) -> float:
    """Images/s of training steps on one batch already in memory: forward, loss (teacher included), backward, step."""
    torch.manual_seed(0)
    loaders = loaders_of(cfg, num_workers=0)
    loaders.set_epoch(0)
    images, targets = next(iter(loaders.train))
    if loaders.mixup is not None:
        images, targets = loaders.mixup(images, targets)
    model = build_model(cfg.model, loaders.num_classes, loaders.in_chans).train()
    loss_fn = build_training_loss(cfg, loaders.num_classes, model.config, torch.device("cpu"))
    optimizer = build_optimizer(model, cfg.optim, cfg.run.batch_size)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = loss_fn(model(images), targets, images)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(images) / (time.perf_counter() - start)


def teacher_top1(cfg: VisionRecipe, weights: Path) -> float:
    """Validation top-1 of the frozen teacher, on the student's evaluation images."""
    loaders = loaders_of(cfg, num_workers=0)
    teacher = load_teacher(cfg.distill.teacher, weights, num_classes=loaders.num_classes)
    return evaluate(teacher, loaders.val)["top1"]


def bench_dataset(dataset: str, out_dir: Path, retrain_teacher: bool) -> dict:
    result: dict = {"dataset": dataset, "target": TARGETS[dataset]}
    dist_cfg = recipe(dataset, True)
    weights = REPO / dist_cfg.distill.teacher_weights
    if retrain_teacher or not weights.is_file():
        start = time.perf_counter()
        metrics = train_teacher(
            dist_cfg, dist_cfg.distill.teacher, weights, epochs=TEACHER_EPOCHS[dataset], lr=2e-3, batch_size=64
        )
        result["teacher"] = {
            "name": dist_cfg.distill.teacher,
            "top1": metrics["top1"],
            "seconds": time.perf_counter() - start,
            "epochs": TEACHER_EPOCHS[dataset],
        }
    result.setdefault("teacher", {"name": dist_cfg.distill.teacher})["top1"] = teacher_top1(dist_cfg, weights)
    for kind, distilled in (("supervised", False), ("distilled", True)):
        cfg = recipe(dataset, distilled, "run.eval_every_epochs=1", f"distill.teacher_weights={weights}")
        load_before = os.getloadavg()[0]  # 1-minute load average: other jobs make every time meaningless
        run = {"load_before": load_before, **timed_training(cfg, out_dir / f"{dataset}_{kind}")}
        run["time_to_target"] = time_to(run["evals"], TARGETS[dataset])
        run["train_images_per_s"] = step_throughput(cfg)
        result[kind] = run
        print(
            f"{dataset} {kind}: top-1 {run['top1']:.2f}% in {run['seconds']:.0f} s, to {TARGETS[dataset]:.0f}%: "
            f"{run['time_to_target']}, step throughput {run['train_images_per_s']:.0f} images/s "
            f"(load {load_before:.2f} before, {run['load_after']:.2f} after)",
            flush=True,
        )
    result["loader_images_per_s"] = loader_throughput(recipe(dataset, False))
    result["load_end"] = os.getloadavg()[0]
    print(f"{dataset} loader: {result['loader_images_per_s']:.0f} images/s", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench_vision"), help="training runs go here")
    parser.add_argument("--retrain-teacher", action="store_true", help="train the teachers even if their files exist")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [bench_dataset(name, args.out_dir, args.retrain_teacher) for name in args.datasets]
    emit_json({"threads": args.threads, "torch": torch.__version__, "results": results}, args.json)


if __name__ == "__main__":
    main()
