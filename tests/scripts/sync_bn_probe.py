"""Cross-process batch norm probe: each process normalises its slice of one fixed batch and saves what it got.

Run by tests/test_sync_batchnorm.py under ``accelerate launch`` with 2 CPU processes::

    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml tests/scripts/sync_bn_probe.py OUT_DIR

For every case (``BatchNorm1d`` on (N, C), ``BatchNorm2d`` on (N, C, H, W), timm's ``BatchNormAct2d``) the global
batch and the loss weights come from a fixed seed; process 0 takes the first 5 rows and process 1 the other 3 (uneven
on purpose). Each layer goes through ``trainkit.batchnorm.sync_batchnorm`` and two training steps, then one eval
step. ``OUT_DIR/rank{R}.pt`` holds, per case, the outputs, the input gradient, the weight and bias gradients and
the running statistics, for the test to compare with one ``BatchNorm`` over the whole batch.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from trainkit.accel import build_accelerator
from trainkit.batchnorm import sync_batchnorm
from trainkit.sections import RunConfig

SPLIT = (5, 3)


def cases() -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """name -> (layer, shape of the global batch); same seeds as the test's single-process reference."""
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    layers = {
        "bn1d": (torch.nn.BatchNorm1d(6), (8, 6)),
        "bn2d": (torch.nn.BatchNorm2d(4, momentum=None), (8, 4, 3, 3)),
        "bn_act2d": (BatchNormAct2d(4, act_layer="relu"), (8, 4, 2, 2)),
    }
    for layer, _ in layers.values():
        with torch.no_grad():
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
    return layers


def batches(shape: tuple[int, ...], step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global input (mean 3, std 2: batch statistics matter) and loss weights of ``step``."""
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(shape, generator=gen) * 2 + 3, torch.randn(shape, generator=gen)


def main() -> None:
    out_dir = Path(sys.argv[1])
    accelerator = build_accelerator(RunConfig(tensorboard=False), tempfile.mkdtemp(prefix="sync_bn_"))
    rank = accelerator.process_index
    start = sum(SPLIT[:rank])
    rows = slice(start, start + SPLIT[rank])
    results = {}
    for name, (layer, shape) in cases().items():
        layer = sync_batchnorm(layer, accelerator)
        record = {"type": type(layer).__name__, "steps": []}
        for step in range(2):
            x, weights = batches(shape, step)
            x = x[rows].clone().requires_grad_(True)
            layer.zero_grad()
            y = layer(x)
            (y * weights[rows]).sum().backward()
            record["steps"].append(
                {"y": y.detach(), "x_grad": x.grad, "w_grad": layer.weight.grad.clone(), "b_grad": layer.bias.grad}
            )
        layer.eval()
        record["eval_y"] = layer(batches(shape, 2)[0][rows]).detach()
        record["buffers"] = {k: v.clone() for k, v in layer.state_dict().items() if "running" in k or "num_" in k}
        results[name] = record
    torch.save(results, out_dir / f"rank{rank}.pt")
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
