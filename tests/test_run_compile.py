"""``run.compile: true`` (torch.compile of the model, inductor with the C++ compiler on the CPU) trains like eager:
the same weights after a few steps of ``vision.train`` and of ``ssl_dino.train``, within float tolerance, and the
checkpoints are interchangeable (no ``_orig_mod.`` prefix). The speed-up is measured on a GPU by bench.gpu."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
VISION = ["-m", "vision.train", "--recipe", str(REPO / "recipes" / "vision" / "resmlp_digits.yaml")]
VISION += ["model.name=resmlp_tiny", "run.batch_size=16", "run.max_steps=3", "run.save_every_steps=0"]
DINO = ["-m", "ssl_dino.train", "--recipe", str(REPO / "recipes" / "dino" / "resmlp_tiny_test.yaml")]
DINO += [
    "crops.policy=none",
    "crops.num_local_crops=0",
    "backbone.drop_path_rate=0.0",
    "monitor.every_epochs=0",
    "run.max_steps=2",
]


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    return clean | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def student(out: Path) -> dict[str, torch.Tensor]:
    folder = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("command", [VISION, DINO], ids=["vision", "dino"])
def test_compiled_training_matches_eager(tmp_path, command):
    logs = {}
    for name, flag in (("eager", "false"), ("compiled", "true")):
        run = [sys.executable, *command, "--output-dir", str(tmp_path / name), f"run.compile={flag}"]
        # TORCH_LOGS=output_code: inductor names every kernel file it generates (or loads from its cache).
        result = subprocess.run(
            run, capture_output=True, text=True, cwd=REPO, env=env() | {"TORCH_LOGS": "output_code"}
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        logs[name] = result.stderr
    assert "Output code written to" in logs["compiled"] and "Output code written to" not in logs["eager"]
    eager, compiled = student(tmp_path / "eager"), student(tmp_path / "compiled")
    assert compiled.keys() == eager.keys()  # same names: checkpoints move between compiled and eager runs
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-4, atol=1e-5, msg=key)
