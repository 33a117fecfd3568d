"""DINO pretraining on the built-in digits: k-NN gain over random init, and the crop policies at equal compute.

    python -m bench.dino --threads 2                          # every ResMLP crop policy, 120 s each
    python -m bench.dino --policies none derived --budget 60 --json out.json

For each crop policy (``none``, ``resize``, ``derived``, ``derived_subgrid``) it runs ``recipes/dino/
resmlp_digits.yaml`` through ``ssl_dino.train.train`` with that policy and the recipe's other settings:

1. Throughput: two short runs (``run.max_steps`` 3 and 3 + ``--probe-steps``); the difference of their times over
   the difference of their steps is the time of one step without the set-up, reported as images/s (images, not
   views: every image gives the policy's 2 global and N local views).
2. Equal compute: the number of epochs that fits in ``--budget`` seconds at that throughput (at least 1), run as a
   complete schedule (warm-up, cosine, teacher momentum and temperature all scaled to it), with the wall time
   reported beside the budget.
3. k-NN (k = 20, T = 0.07, as DINO) of the exported teacher backbone: bank = the 1,438 training digits, queries =
   the 359 held-out ones, through the evaluation transform; the same backbone at random initialisation (the run's
   seed) is the baseline.

The numbers are wall-clock: run it on a quiet machine. Results go to ``docs/benchmarks.md`` by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from ssl_dino.data import build_dataset
from ssl_dino.knn import main as knn_main
from ssl_dino.recipe import DinoRecipe
from ssl_dino.train import build_student, train
from trainkit import load_recipe

from .report import emit_json

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "dino" / "resmlp_digits.yaml"
POLICIES = ("none", "resize", "derived", "derived_subgrid")
QUIET = ["run.tensorboard=false", "run.resume=off", "monitor.every_epochs=0", "run.log_every_steps=1000000"]


def recipe(policy: str, *overrides: str) -> DinoRecipe:
    return load_recipe(DinoRecipe, RECIPE, [*QUIET, f"crops.policy={policy}", *overrides])


def timed_train(cfg: DinoRecipe, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    train(cfg, out)
    return time.perf_counter() - start


def seconds_per_step(policy: str, out: Path, probe_steps: int, extra: list[str]) -> float:
    short = timed_train(recipe(policy, "run.max_steps=3", *extra), out / "probe")
    long = timed_train(recipe(policy, f"run.max_steps={3 + probe_steps}", *extra), out / "probe")
    shutil.rmtree(out / "probe", ignore_errors=True)
    return max(long - short, 1e-9) / probe_steps


def knn_top1(img_size: int, *model_args: str) -> float:
    args = [*model_args, "--data", "digits", "--img-size", str(img_size), "--crop-ratio", "1.0", "--nb-knn", "20"]
    return knn_main(args)[20][0]


def bench_policy(policy: str, budget: float, out: Path, probe_steps: int, extra: list[str]) -> dict:
    base = recipe(policy, *extra)
    step_s = seconds_per_step(policy, out, probe_steps, extra)
    images = len(build_dataset(base.data.dataset, "train", None, img_size=base.backbone.img_size or 32))
    steps_per_epoch = images // base.run.batch_size  # the training loader drops the last partial batch
    epochs = max(1, int(budget / (step_s * steps_per_epoch)))
    # The warm-ups keep their share of the recipe's schedule (lr 5 of 50 epochs, teacher temperature 10 of 50).
    warmup = min(base.schedule.warmup_epochs, max(1, epochs // 10))
    temp_warmup = min(base.dino.warmup_teacher_temp_epochs, max(1, epochs // 5))
    cfg = recipe(
        policy,
        *extra,
        f"schedule.epochs={epochs}",
        f"schedule.warmup_epochs={warmup}",
        f"dino.warmup_teacher_temp_epochs={temp_warmup}",
    )
    run_dir = out / policy
    seconds = timed_train(cfg, run_dir)
    size = cfg.backbone.img_size or 32
    crops = build_student(cfg).policy
    result = {
        "policy": policy,
        "views": f"2x{size}px + {crops.num_local_crops}x{crops.local_size}px"
        + (f" (resized to {crops.local_input_size}px)" if crops.local_input_size != crops.local_size else ""),
        "images_per_s": base.run.batch_size / step_s,
        "epochs": epochs,
        "seconds": seconds,
        "knn_top1": knn_top1(size, "--checkpoint", str(run_dir / "model.pth")),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of pretraining per policy")
    parser.add_argument("--probe-steps", type=int, default=10, help="steps timed for the throughput")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench_dino"))
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    parser.add_argument("overrides", nargs="*", help="section.key=value applied to every run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    first = recipe(args.policies[0], *args.overrides)
    size = first.backbone.img_size or 32
    random_init = knn_top1(size, "--random-init", "--arch", first.backbone.name, "--seed", str(first.run.seed))
    print(f"random init {first.backbone.name}: k-NN top-1 {random_init:.2f}%", flush=True)
    results = [bench_policy(p, args.budget, args.out_dir, args.probe_steps, args.overrides) for p in args.policies]
    payload = {"threads": args.threads, "budget_s": args.budget, "random_init_knn_top1": random_init}
    emit_json({**payload, "results": results}, args.json)


if __name__ == "__main__":
    main()
