"""Demo stage: DINO pretraining on the built-in digits, then k-NN of the features beside random initialisation.

Pretrains ``recipes/dino/resmlp_digits.yaml`` (no labels), then runs the DINO k-NN protocol (k = 20, T = 0.07,
bank = the 1,438 training digits, queries = the 359 held-out ones) on the exported teacher backbone and on the same
backbone at random initialisation (same seed as the run's start). Run:
``python -m demo.dino --out-dir outputs/demo`` (``--epochs N`` for a shorter run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ssl_dino.knn import main as knn_main
from ssl_dino.recipe import DinoRecipe
from ssl_dino.train import train
from trainkit import load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "dino" / "resmlp_digits.yaml"


def knn_top1(img_size: int, *model_args: str) -> float:
    args = [*model_args, "--data", "digits", "--img-size", str(img_size), "--crop-ratio", "1.0", "--nb-knn", "20"]
    return knn_main(args)[20][0]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="demo.dino", description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (shorter demo)")
    args = parser.parse_args(argv)
    overrides = ["run.resume=off", "monitor.every_epochs=0"]
    if args.epochs is not None:
        warmup = min(load_recipe(DinoRecipe, RECIPE).schedule.warmup_epochs, args.epochs)
        overrides += [f"schedule.epochs={args.epochs}", f"schedule.warmup_epochs={warmup}"]
    cfg = load_recipe(DinoRecipe, RECIPE, overrides)
    out = args.out_dir / "dino_digits"
    if (out / "checkpoints").exists():  # a demo starts fresh each time
        import shutil

        shutil.rmtree(out)
    start = time.perf_counter()
    train(cfg, out)
    seconds = time.perf_counter() - start
    print("\n== k-NN (k=20) on the held-out digits ==")
    size = cfg.backbone.img_size or 32
    pretrained = knn_top1(size, "--checkpoint", str(out / "model.pth"))
    random_init = knn_top1(size, "--random-init", "--arch", cfg.backbone.name, "--seed", str(cfg.run.seed))
    print(f"{cfg.backbone.name}: DINO teacher {pretrained:.2f}% | random init {random_init:.2f}% "
          f"| gain {pretrained - random_init:+.2f} points | pretraining {seconds:.0f} s")  # fmt: skip
    return {"dino": pretrained, "random_init": random_init, "seconds": seconds}


if __name__ == "__main__":
    main()
