"""Real `accelerate launch` runs on the CPU: one process group of two, never two independent runs (trainkit.accel)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trainkit.accel import LaunchError, check_process_group, env_world_size

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
CONFIGS = REPO / "recipes" / "accelerate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "LOCAL_RANK"))}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # a CPU-only machine, even where a GPU exists
    command = [ACCELERATE, "launch", "--main_process_port", str(free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def probe_lines(result: subprocess.CompletedProcess) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # Search the whole output: lines of two processes writing at once may interleave.
    probes = re.findall(r"PROBE (rank=\d+ world=\d+ processes=\d+ sum=[\d.]+ backend=\w+)", result.stdout)
    return [dict(item.split("=") for item in probe.split()) for probe in probes]


def assert_one_group_of_two(lines: list[dict[str, str]]) -> None:
    assert sorted(line["rank"] for line in lines) == ["0", "1"]
    assert all(line["world"] == "2" and line["processes"] == "2" and line["backend"] == "gloo" for line in lines)
    assert all(float(line["sum"]) == 1.0 + 2.0 for line in lines)  # the all-reduce saw both ranks


def test_multi_gpu_flag_without_gpu_forms_one_gloo_group():
    result = launch("--multi_gpu", "--num_processes", "2", "tests/scripts/ddp_probe.py")
    assert_one_group_of_two(probe_lines(result))


def test_cpu_2proc_config_forms_one_gloo_group():
    result = launch("--config_file", str(CONFIGS / "cpu_2proc.yaml"), "tests/scripts/ddp_probe.py")
    assert_one_group_of_two(probe_lines(result))


def test_a_split_launch_is_refused_with_the_fix():
    # What a bare Accelerator reports under `accelerate launch --multi_gpu --num_processes 2` without a GPU.
    with pytest.raises(LaunchError, match=r"started 2 processes .* 2 independent trainings.*cpu_2proc\.yaml"):
        check_process_group(launched=2, num_processes=1, group_size=None)
    with pytest.raises(LaunchError, match="size mismatch"):
        check_process_group(launched=4, num_processes=2, group_size=2)
    with pytest.raises(LaunchError, match="size mismatch"):
        check_process_group(launched=2, num_processes=2, group_size=1)
    check_process_group(launched=1, num_processes=1, group_size=None)
    check_process_group(launched=2, num_processes=2, group_size=2)
    assert env_world_size({"WORLD_SIZE": "8"}) == 8 and env_world_size({}) == 1


def test_launch_configs_parse_and_say_when_to_use_them():
    from accelerate.commands.config.config_args import load_config_from_file

    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == ["cpu_2proc.yaml", "fsdp_gpu8.yaml", "gpu8.yaml", "multinode_2x8.yaml", "one_gpu.yaml"]
    for name in names:
        text = (CONFIGS / name).read_text()
        assert text.startswith("# When to use:"), name
        assert not re.search(r"^\s*(lr|batch_size|epochs|weight_decay)\s*:", text, re.M), f"{name}: science key"
        config = load_config_from_file(str(CONFIGS / name))
        assert config.num_processes == {"cpu_2proc.yaml": 2, "one_gpu.yaml": 1, "multinode_2x8.yaml": 16}.get(name, 8)


@pytest.mark.slow
def test_two_process_training_saves_one_checkpoint_with_both_rng_states(tmp_path):
    result = launch(
        "--config_file",
        str(CONFIGS / "cpu_2proc.yaml"),
        "tests/scripts/tiny_train.py",
        "--output-dir",
        str(tmp_path),
        "run.max_steps=4",
        "run.save_every_steps=2",
        "run.tensorboard=false",
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    step = tmp_path / "checkpoints" / "step_000000004"
    assert {"rng_0.safetensors", "rng_1.safetensors", "model.safetensors"} <= {p.name for p in step.iterdir()}
    assert not list(step.glob("*.pkl"))  # no pickles: nothing in a checkpoint can run code when loaded
    assert json.loads((step / "position.json").read_text())["num_processes"] == 2
    # 48 images / (8 per process x 2 processes) = 3 steps per epoch: step 4 is batch 1 of epoch 1.
    assert json.loads((step / "position.json").read_text())["batch"] == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2  # one writer, not two
    import resmlp

    resmlp.create_model("resmlp_tiny", checkpoint=tmp_path / "model.pth")
