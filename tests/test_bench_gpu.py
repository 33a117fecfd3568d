"""``python -m bench.gpu``: the GPU check command. Its dry run (every stage at toy size on the CPU) runs here, so the
command cannot rot while no GPU is at hand; a check over its tolerance fails the command; the bf16 peak table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu, gpu_checks
from bench.gpu_speed import bf16_peak_tflops

REPO = Path(__file__).resolve().parents[1]
CHECKS = {
    "image eval fp32", "image eval bf16 autocast", "image eval fp32, channels_last input", "image fused fp32",
    "image fused bf16 weights", "image fused bf16 weights, torch.compile (aot_eager)", "image train fp32",
    "image train bf16 autocast", "image train bf16 autocast, torch.compile (aot_eager)",
    "seq2seq encoder+decoder fp32", "seq2seq encoder+decoder bf16 autocast",
    "seq2seq encoder+decoder fp16 weights (--fp16)", "seq2seq incremental decoding",
}  # fmt: skip
TASKS = {"vision.train", "ssl_dino.train", "ssl_dino.knn", "fairseq-train", "fairseq-generate"}


def test_dry_run_runs_every_stage_and_reports_each_result(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    command = [sys.executable, "-m", "bench.gpu", "--dry-run", "--out-dir", str(tmp_path), "--peak-tflops", "0.5"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    by_stage: dict[str, dict[str, dict]] = {}
    for r in report["results"]:
        by_stage.setdefault(r["stage"], {})[r["name"]] = r
    assert set(by_stage) == {"checks", "tasks", "speed"}
    assert set(by_stage["checks"]) == CHECKS
    assert {name.split(" ")[0].rstrip(",") for name in by_stage["tasks"]} == TASKS
    assert all(r["status"] == "pass" for stage in ("checks", "tasks") for r in by_stage[stage].values())
    # Speed: every model and phase measured eager and compiled, MFU against the peak given on the command line.
    for name in ("ours", "timm"):
        for phase in ("inference", "training"):
            figures = report["speed"]["models"][name][phase]
            assert figures["eager"] > 0 and figures["compiled"] > 0 and figures["flops_per_image"] > 0
            assert figures["mfu"]["eager"] == pytest.approx(figures["tflops"]["eager"] / 0.5)
    assert {n for n in by_stage["speed"] if n.startswith("goal:")} == {
        "goal: inference, ours / timm", "goal: training, ours / timm", "goal: bf16 inference MFU, ours",
    }  # fmt: skip
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.startswith("# bench.gpu DRY RUN") and "| checks | image eval fp32 | pass |" in markdown
    assert "The dry run differs from the GPU run" in markdown
    assert (tmp_path / "logs" / "vision.log").is_file() and (tmp_path / "runs" / "dino" / "model.pth").is_file()


def test_a_check_over_its_tolerance_fails_the_command(tmp_path, monkeypatch, capsys):
    # The same checks with every tolerance at zero: only paths that agree exactly (the CPU compared with itself)
    # pass, every other check fails, and the command says so and exits 1.
    monkeypatch.setattr(gpu_checks, "TOLERANCE", dict.fromkeys(gpu_checks.TOLERANCE, 0.0))
    assert gpu.main(["--dry-run", "--stages", "checks", "--out-dir", str(tmp_path)]) == 1
    statuses = {r["name"]: r["status"] for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    assert statuses["image eval bf16 autocast"] == "FAIL" and statuses["image train fp32"] == "FAIL"
    assert statuses["seq2seq encoder+decoder fp32"] == "pass"  # exactly equal on the same device
    assert "check(s) FAILED" in capsys.readouterr().out


def test_a_path_that_raises_is_a_failed_check_not_a_crash():
    def broken():
        raise RuntimeError("no kernel image is available for execution on the device\nmore detail")

    result = gpu_checks.guarded("image eval fp32", broken)
    assert result.passed is False
    assert result.detail == "raised RuntimeError: no kernel image is available for execution on the device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_without_a_gpu_the_command_says_what_to_do(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--out-dir", "/nonexistent"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "no CUDA device is visible" in message and "--dry-run" in message


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA A10G", None),  # not an A10: no guess
        ("Tesla V100-SXM2-16GB", None),  # no bf16 tensor cores
    ],
)
def test_bf16_peak_by_device_name(name, peak):
    assert bf16_peak_tflops(name) == peak
