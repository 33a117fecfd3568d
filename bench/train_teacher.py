"""Train a small timm CNN as the distillation teacher for the built-in datasets, and save its state dict.

    python -m bench.train_teacher --recipe recipes/vision/resmlp_digits_dist.yaml
    python -m bench.train_teacher --recipe recipes/vision/resmlp_procedural_dist.yaml --epochs 15

The teacher is trained on exactly the data, normalisation and training augmentation the student will see: the
``data``, ``augment`` and ``eval`` sections of the recipe, through ``vision.data.build_loaders``. Mixup/CutMix are
not applied (a plain supervised loop with label smoothing). The model is ``timm.create_model(NAME)`` unchanged, so
``vision.teacher.load_teacher`` rebuilds it from the name alone; at 32 px timm's ResNets end on a 1x1 feature map,
which is enough for these images. By default the model name and output file are the recipe's ``distill.teacher``
and ``distill.teacher_weights``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from resmlp.cli import UsageError, add_debug_flag, command
from trainkit import check_output_dir, load_recipe
from vision.data import build_loaders
from vision.evaluate import evaluate
from vision.recipe import VisionRecipe
from vision.train import resmlp_img_size


def train_teacher(
    cfg: VisionRecipe, name: str, out: Path, *, epochs: int, lr: float, batch_size: int, seed: int = 0
) -> dict[str, float]:
    """Train timm ``name`` on ``cfg``'s data for ``epochs``; save its state dict to ``out``; return val metrics."""
    import timm

    torch.manual_seed(seed)
    img_size = cfg.model.img_size or resmlp_img_size(cfg)  # the student's input size
    loaders = build_loaders(
        cfg.data,
        cfg.augment,
        cfg.eval,
        img_size=img_size,
        batch_size=batch_size,
        world_size=1,
        rank=0,
        seed=seed,
        num_workers=0,
    )
    try:
        model = timm.create_model(name, pretrained=False, num_classes=loaders.num_classes, in_chans=loaders.in_chans)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise UsageError(f"--model {name!r}: {err}; see timm.list_models() for names") from None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    total = epochs * loaders.steps_per_epoch
    step, start = 0, time.perf_counter()
    for epoch in range(epochs):
        loaders.set_epoch(epoch)
        model.train()
        for images, targets in loaders.train:
            for group in optimizer.param_groups:  # cosine from lr to 0, per step
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(images), targets, label_smoothing=cfg.augment.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        metrics = evaluate(model, loaders.val)
        print(
            f"epoch {epoch}: loss {loss.item():.4f}  val top1 {metrics['top1']:.2f}%  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    print(f"saved {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters) to {out}")
    return metrics


@command("bench.train_teacher")
def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr (status 2: usage, 1: failure)."""
    parser = argparse.ArgumentParser(prog="python -m bench.train_teacher", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, type=Path, help="a vision recipe: its data/augment/eval sections")
    parser.add_argument("--model", default=None, help="timm model name (default: the recipe's distill.teacher)")
    parser.add_argument("--out", type=Path, default=None, help="state dict file (default: distill.teacher_weights)")
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training split")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (cosine to 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise UsageError("--epochs and --batch-size must be >= 1 and --lr > 0")
    cfg = load_recipe(VisionRecipe, args.recipe)
    name = args.model or cfg.distill.teacher
    out = args.out or (Path(cfg.distill.teacher_weights) if cfg.distill.teacher_weights else None)
    if not name or out is None:
        raise UsageError("the recipe has no distill.teacher / distill.teacher_weights: pass --model and --out")
    check_output_dir(out.parent, subfolders=())  # before training, not at the save
    train_teacher(cfg, name, out, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    return 0


if __name__ == "__main__":
    main()
