"""Demo stage: train a ResMLP on the built-in digits, evaluate it, draw its training curves.

Runs ``recipes/vision/resmlp_digits.yaml`` (a few minutes on 2 CPU cores, >= 98% top-1 on the held-out digits)
through ``vision.train.train``, then scores the exported model with the ``python -m vision.evaluate`` command's
own code, and prints the final top-1. Run: ``python -m demo.vision --out-dir outputs/demo``. Extra
``section.key=value`` arguments override the recipe, as on the training command line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from trainkit import load_recipe
from vision import evaluate
from vision.recipe import VisionRecipe
from vision.train import train

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "vision" / "resmlp_digits.yaml"
GOAL = 98.0  # percent top-1 on the held-out digits (issue 3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("overrides", nargs="*", help="section.key=value recipe overrides")
    args = parser.parse_args(argv)
    cfg = load_recipe(VisionRecipe, args.recipe, args.overrides)
    run_dir = args.out_dir / "vision_digits"
    shutil.rmtree(run_dir, ignore_errors=True)  # a demo always starts from scratch (no resume of an old run)
    start = time.perf_counter()

    print(f"== training {cfg.model.name} on {cfg.data.dataset} ({args.recipe.name}) ==")
    train(cfg, run_dir)
    trained = time.perf_counter() - start

    print("\n== evaluation (python -m vision.evaluate) ==")
    report = run_dir / "eval.json"
    evaluate.main(
        [
            *("--checkpoint", str(run_dir / "model.pth"), "--data", cfg.data.dataset),
            *("--builtin-size", str(cfg.data.builtin_size), "--crop-ratio", str(cfg.eval.crop_ratio)),
            *("--num-workers", "0", "--device", "cpu", "--json", str(report)),
        ]
    )
    top1 = json.loads(report.read_text())["top1"]

    print("\n== curves ==")
    print(f"wrote {run_dir / 'curves.png'} (metrics: {run_dir / 'metrics.jsonl'})")
    verdict = "met" if top1 >= GOAL else "NOT met"
    print(f"\nfinal top-1 on the held-out digits: {top1:.2f}% (goal >= {GOAL:.0f}%: {verdict})")
    print(f"vision stage done in {time.perf_counter() - start:.0f} s (training {trained:.0f} s)")


if __name__ == "__main__":
    main()
