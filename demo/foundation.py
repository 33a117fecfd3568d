"""Demo stage 1: the block library.

Builds every paper preset and ablation and prints its parameters and multiply-adds beside the paper's, checks the fused
inference model against the plain one, times a short inference comparison against timm's ``resmlp_12_224`` and
draws the token-mixing figure. Run: ``python -m demo.foundation --out-dir outputs/demo``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import resmlp
from bench.inference import time_inference
from resmlp.flops import PAPER_ABLATION_STATS, PAPER_STATS, model_stats
from resmlp.viz import plot_model


def preset_table() -> None:
    rows = [(name, {}, *PAPER_STATS[name]) for name in PAPER_STATS] + PAPER_ABLATION_STATS
    print(f"{'preset (ablation)':<40}{'params (M)':>12}{'paper':>8}{'GMACs':>9}{'paper':>8}")
    for name, overrides, paper_params, paper_gmacs in rows:
        params, macs = model_stats(resmlp.get_config(name, **overrides))
        label = name + "".join(f" {k}={v}" for k, v in overrides.items())
        print(f"{label:<40}{params / 1e6:>12.1f}{paper_params:>8.1f}{macs / 1e9:>9.1f}{paper_gmacs:>8.1f}")


def randomise_(model: torch.nn.Module) -> None:
    """Give Affine, LayerScale and biases non-trivial values, so folding them is really exercised."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.copy_(torch.randn_like(param) * 0.5 + (1.0 if name.endswith("alpha") else 0.0))


def fused_check() -> None:
    torch.manual_seed(0)
    model = resmlp.create_model("resmlp_s12").eval()
    randomise_(model)
    fused = resmlp.fuse(model)
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    print(f"fused vs plain ResMLP-S12 (batch 4, 224 px): max relative difference {rel:.2e} (bound 1e-4)")
    if rel > 1e-4:
        raise SystemExit("fused model disagrees with the plain model")


def timing(batch_size: int, iters: int) -> None:
    import timm

    torch.manual_seed(0)
    models = {
        "timm resmlp_12_224": timm.create_model("resmlp_12_224", pretrained=False).eval(),
        "resmlp_s12 (plain)": resmlp.create_model("resmlp_s12").eval(),
    }
    models["resmlp_s12 (fused)"] = resmlp.fuse(models["resmlp_s12 (plain)"])
    print(f"inference, fp32, batch {batch_size}, 224 px, {torch.get_num_threads()} threads:")
    base = None
    for name, model in models.items():
        rate = time_inference(model, batch_size, 224, iters=iters, warmup=1)
        base = base or rate
        print(f"  {name:<22}{rate:8.1f} images/s  ({rate / base:.2f}x timm)")
    print("  (a short run; bench/inference.py measures properly, see docs/benchmarks.md)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print("== presets at 224 px, 1000 classes ==")
    preset_table()
    print("\n== fused inference ==")
    fused_check()
    print("\n== speed against timm ==")
    timing(args.batch_size, args.iters)
    print("\n== token-mixing figure ==")
    figure = args.out_dir / "token_mixing_s12_random_init.png"
    plot_model(resmlp.create_model("resmlp_s12"), figure, title="ResMLP-S12 at random init")
    print(f"wrote {figure}")
    print(f"\nfoundation stage done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
