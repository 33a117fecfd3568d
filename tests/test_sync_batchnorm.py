"""Batch norm across processes (``trainkit.batchnorm``): on the CPU (gloo), N processes normalise like one process
over the whole batch, forward and backward, and a 2-process DINO run with a batch-norm head equals the 1-process run
at the same total batch. Multi-process cases run under the real ``accelerate launch`` with 2 CPU processes."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from trainkit.batchnorm import CrossProcessBatchNorm, convert_cross_process_batchnorm, sync_batchnorm

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
CPU_2PROC = REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"
PROBE = REPO / "tests" / "scripts" / "sync_bn_probe.py"
DINO_TINY = REPO / "recipes" / "dino" / "resmlp_tiny_test.yaml"


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    return clean | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def two_processes(*command: str) -> list[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return [ACCELERATE, "launch", "--config_file", str(CPU_2PROC), "--main_process_port", port, *command]


def launch(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def probe_module():
    spec = importlib.util.spec_from_file_location("sync_bn_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OneProcess:
    """What ``sync_batchnorm`` needs of an Accelerator, for a single CPU process."""

    num_processes = 1
    device = torch.device("cpu")


def test_two_processes_normalise_forward_and_backward_like_one_batch_norm_over_the_whole_batch(tmp_path):
    launch(two_processes(str(PROBE), str(tmp_path)))
    probe = probe_module()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for name, (layer, shape) in probe.cases().items():
        assert all(r[name]["type"].startswith("CrossProcess") for r in ranks), name
        for step in range(2):
            x, weights = probe.batches(shape, step)
            x.requires_grad_(True)
            layer.zero_grad()
            y = layer(x)
            (y * weights).sum().backward()
            got = [r[name]["steps"][step] for r in ranks]
            close = {"rtol": 1e-5, "atol": 1e-5}
            torch.testing.assert_close(torch.cat([g["y"] for g in got]), y.detach(), **close, msg=f"{name} y")
            torch.testing.assert_close(torch.cat([g["x_grad"] for g in got]), x.grad, **close, msg=f"{name} dx")
            # Each process holds its part of the weight gradient; DDP's reduction adds them up.
            torch.testing.assert_close(got[0]["w_grad"] + got[1]["w_grad"], layer.weight.grad, **close)
            torch.testing.assert_close(got[0]["b_grad"] + got[1]["b_grad"], layer.bias.grad, **close)
            # The statistics matter: each slice normalised on its own is not the whole-batch result.
            alone = torch.nn.functional.batch_norm(x[:5].detach(), None, None, training=True)
            whole = torch.nn.functional.batch_norm(x.detach(), None, None, training=True)[:5]
            assert not torch.allclose(alone, whole, atol=1e-2)
        layer.eval()
        with torch.no_grad():
            eval_y = layer(probe.batches(shape, 2)[0])
        torch.testing.assert_close(torch.cat([r[name]["eval_y"] for r in ranks]), eval_y, rtol=1e-5, atol=1e-5)
        for key, value in layer.state_dict().items():
            if "running" in key or "num_" in key:
                for r in ranks:
                    torch.testing.assert_close(r[name]["buffers"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_one_process_without_a_group_is_plain_batch_norm():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3)
    layer = convert_cross_process_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))[0]
    layer.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    for module in (plain, layer):
        module(x)
    torch.testing.assert_close(layer.running_mean, plain.running_mean)
    torch.testing.assert_close(layer(x), plain(x))
    layer.eval(), plain.eval()
    torch.testing.assert_close(layer(x), plain(x))


def test_conversion_keeps_names_tensors_and_mode_and_refuses_other_batch_norms():
    head = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.GELU(), nn.Linear(8, 2))
    head[1].eval()
    weight, keys = head[1].weight, list(head.state_dict())
    assert sync_batchnorm(head, OneProcess()) is head and type(head[1]) is nn.BatchNorm1d  # one process: untouched
    converted = convert_cross_process_batchnorm(head)
    assert isinstance(converted[1], CrossProcessBatchNorm) and converted[1].weight is weight
    assert list(converted.state_dict()) == keys and not converted[1].training
    assert convert_cross_process_batchnorm(converted)[1] is converted[1]  # idempotent

    class OwnNorm(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(TypeError, match="OwnNorm"):
        convert_cross_process_batchnorm(nn.Sequential(OwnNorm(3)))


def dino_run(out: Path, *overrides: str, launcher: list[str]) -> subprocess.CompletedProcess:
    # SGD at a large constant rate: its update is linear in the gradient, so batch statistics that differ show in
    # the weights after a few steps (Adam's first, normalised steps would turn float noise into full-size updates).
    same = ["dino.use_bn_in_head=true", "backbone.drop_path_rate=0.0", "run.max_steps=4", "run.save_every_steps=0"]
    same += ["optim.name=sgd", "optim.lr=0.25", "optim.lr_reference_batch=null", "schedule.warmup_epochs=0"]
    command = [*launcher, "--recipe", str(DINO_TINY), "--output-dir", str(out), *same, *overrides]
    return launch(command)


def final_state(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Student, teacher and DINO centre of the last checkpoint of a run."""
    folder = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    teacher = load_file(folder / "teacher.safetensors")  # trainkit checkpoints: safetensors, never pickles
    center = load_file(folder / "dino_loss.safetensors")["center"]
    return {"student": load_file(folder / "model.safetensors"), "teacher": teacher, "centre": {"centre": center}}


def test_two_process_dino_with_a_batch_norm_head_equals_the_one_process_run(tmp_path):
    """Same total batch 16 (1 x 16 and 2 x 8); no stochastic depth (its draws depend on the split). Without batch
    norm across processes each process normalises the head's features over its own 8 images: the weights then
    differ by about 0.8 after these 4 steps, and the centre (the teacher's mean output) by 1e-2."""
    dino_run(tmp_path / "one", "run.batch_size=16", launcher=[sys.executable, "-m", "ssl_dino.train"])
    two = dino_run(tmp_path / "two", "run.batch_size=8", launcher=two_processes("-m", "ssl_dino.train"))
    assert "2 process(es), total batch 16" in two.stdout
    one, two = final_state(tmp_path / "one"), final_state(tmp_path / "two")
    assert any("mlp.1.running_mean" in key for key in one["teacher"])  # the head has batch norm
    for part in one:
        assert one[part].keys() == two[part].keys()
        for key, value in one[part].items():
            torch.testing.assert_close(two[part][key], value, rtol=1e-4, atol=1e-4, msg=f"{part} {key}")
