"""Nothing in a run folder executes code when a run resumes from it.

Real checkpoint folders are written by ``vision.train`` (with an EMA) and ``ssl_dino.train`` (teacher and loss
centre). Then every file of a folder is replaced, in turn, by a pickle whose ``__reduce__`` would create a marker
file when unpickled (as a raw pickle and as a torch zip file); resuming by path and by ``auto`` must refuse with an
error naming that file, and the marker must never appear. Folders written by earlier versions (accelerate's
``save_state`` pickles) are refused and say how to continue, never unpickled; missing or damaged RNG states, planted
extra files and truncated files are refused by name.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import resmlp
from resmlp.checkpoint import CheckpointError, safe_load
from ssl_dino.recipe import DinoRecipe
from ssl_dino.train import main as dino_main
from ssl_dino.train import train as dino_train
from trainkit import load_recipe
from trainkit.accel import build_accelerator
from trainkit.checkpoints import CheckpointManager, ResumeError
from trainkit.optim import build_ema, build_optimizer
from trainkit.sections import OptimConfig, RunConfig
from vision.recipe import VisionRecipe
from vision.train import main as vision_main
from vision.train import train as vision_train

REPO = Path(__file__).resolve().parents[1]
VISION = ["model.name=resmlp_tiny", "data.builtin_size=16", "optim.ema_decay=0.9", "run.batch_size=16"]
VISION += ["run.max_steps=2", "run.save_every_steps=1", "run.tensorboard=false", "run.num_workers=0"]
DINO = ["run.max_steps=2", "run.save_every_steps=1", "monitor.every_epochs=0", "run.tensorboard=false"]


class Payload:
    """Unpickling this object calls ``open(marker, "w")``: the file appears if (and only if) the pickle runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, form: str) -> None:
    path.unlink(missing_ok=True)
    if form == "pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:  # a torch zip file whose data.pkl holds the payload
        torch.save({"state": Payload(marker)}, path)


def fresh_accelerator(tmp: Path):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return build_accelerator(RunConfig(tensorboard=False), tmp)


def manager(directory: Path, tmp: Path, extras: tuple[str, ...]) -> CheckpointManager:
    """A manager like the trainers' (same extra names); the refusals come before anything is applied."""
    accelerator = fresh_accelerator(tmp)
    model = resmlp.create_model("resmlp_tiny")
    optimizer = build_optimizer(model, OptimConfig(name="adamw"), total_batch=16)
    model, optimizer = accelerator.prepare(model, optimizer)
    named = {name: build_ema(model, 0.9) for name in extras}
    return CheckpointManager(directory, accelerator, model=model, optimizer=optimizer, extras=named)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Real output folders: vision with an EMA, and DINO (teacher + loss centre); 2 steps, a checkpoint each."""
    root = tmp_path_factory.mktemp("runs")
    vision_train(load_recipe(VisionRecipe, REPO / "recipes/vision/resmlp_digits.yaml", VISION), root / "vision")
    dino_train(load_recipe(DinoRecipe, REPO / "recipes/dino/resmlp_tiny_test.yaml", DINO), root / "dino")
    return {"vision": root / "vision", "dino": root / "dino"}


EXTRAS = {"vision": ("ema",), "dino": ("teacher", "dino_loss")}
FILES = {
    "vision": ["model.safetensors", "optimizer.safetensors", "ema.safetensors", "rng_0.safetensors", "position.json"],
    "dino": [
        "model.safetensors",
        "optimizer.safetensors",
        "teacher.safetensors",
        "dino_loss.safetensors",
        "rng_0.safetensors",
        "position.json",
    ],
}
CASES = [(run, name) for run, names in FILES.items() for name in names]


def test_the_folders_hold_exactly_the_files_we_check(runs):
    for run, names in FILES.items():
        latest = runs[run] / "checkpoints" / "step_000000002"
        assert sorted(p.name for p in latest.iterdir()) == sorted(names)


@pytest.mark.parametrize("form", ["pickle", "torch-zip"])
@pytest.mark.parametrize(("run", "name"), CASES, ids=[f"{r}-{n}" for r, n in CASES])
def test_a_payload_in_any_file_never_runs_and_the_refusal_names_the_file(runs, tmp_path, run, name, form):
    out = tmp_path / "out"
    shutil.copytree(runs[run], out)
    folder = out / "checkpoints" / "step_000000002"
    marker = tmp_path / "PAYLOAD_RAN"
    plant(folder / name, marker, form)
    for mode in (str(folder), "auto"):
        ckpt = manager(out / "checkpoints", tmp_path, EXTRAS[run])
        with pytest.raises(ResumeError) as err:
            ckpt.resume(mode)
        assert str(folder / name) in str(err.value), err.value
        assert not marker.exists(), f"resume={mode} ran the payload in {name}"


@pytest.mark.parametrize(
    ("run", "name", "mode"),
    [("vision", "ema.safetensors", "auto"), ("vision", "optimizer.safetensors", "path")]
    + [("dino", "teacher.safetensors", "auto"), ("dino", "dino_loss.safetensors", "path")],
)
def test_the_training_commands_refuse_in_one_line(runs, tmp_path, capsys, run, name, mode):
    out = tmp_path / "out"
    shutil.copytree(runs[run], out)
    folder = out / "checkpoints" / "step_000000002"
    marker = tmp_path / "PAYLOAD_RAN"
    plant(folder / name, marker, "torch-zip")
    resume = "auto" if mode == "auto" else str(folder)
    if run == "vision":
        argv = ["--recipe", str(REPO / "recipes/vision/resmlp_digits.yaml"), *VISION]
        main = vision_main
    else:
        argv = ["--recipe", str(REPO / "recipes/dino/resmlp_tiny_test.yaml"), *DINO]
        main = dino_main
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--output-dir", str(out), "run.max_steps=3", f"run.resume={resume}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert err[-1].startswith(f"{'vision.train' if run == 'vision' else 'ssl_dino.train'}: error: ")
    assert str(folder / name) in err[-1] and not any("Traceback" in line for line in err)
    assert not marker.exists()


def test_a_planted_extra_file_is_refused_by_name(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["vision"], out)
    folder = out / "checkpoints" / "step_000000002"
    marker = tmp_path / "PAYLOAD_RAN"
    plant(folder / "custom_checkpoint_0.pkl", marker, "torch-zip")
    with pytest.raises(ResumeError, match=r"custom_checkpoint_0\.pkl was not written by this run"):
        manager(out / "checkpoints", tmp_path, EXTRAS["vision"]).resume("auto")
    assert not marker.exists()


def test_missing_or_damaged_rng_state_is_an_error_not_a_skip(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["dino"], out)
    folder = out / "checkpoints" / "step_000000002"
    rng = folder / "rng_0.safetensors"
    data = rng.read_bytes()
    rng.unlink()
    with pytest.raises(ResumeError, match=r"rng_0\.safetensors \(random-generator state of one process\) is missing"):
        manager(out / "checkpoints", tmp_path, EXTRAS["dino"]).resume("auto")
    rng.write_bytes(b"\xff" * len(data))  # damaged, same size
    with pytest.raises(ResumeError, match=r"rng_0\.safetensors: not a valid safetensors file"):
        manager(out / "checkpoints", tmp_path, EXTRAS["dino"]).resume("auto")
    rng.write_bytes(data[:-10])  # truncated
    with pytest.raises(ResumeError, match=r"rng_0\.safetensors has \d+ bytes but was saved with"):
        manager(out / "checkpoints", tmp_path, EXTRAS["dino"]).resume(str(folder))


def test_a_damaged_newest_checkpoint_stops_auto_instead_of_falling_back(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["vision"], out)
    (out / "checkpoints" / "step_000000002" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ResumeError, match=r"step_000000002/model\.safetensors.*an earlier checkpoint"):
        manager(out / "checkpoints", tmp_path, EXTRAS["vision"]).resume("auto")


def write_legacy_folder(directory: Path, tmp: Path, marker: Path) -> Path:
    """A checkpoint as the previous version wrote it (accelerate save_state + register_for_checkpointing), with the
    EMA's pickle replaced by a payload."""
    accelerator = fresh_accelerator(tmp)
    model = resmlp.create_model("resmlp_tiny")
    ema = build_ema(model, 0.9)
    optimizer = build_optimizer(model, OptimConfig(name="adamw"), total_batch=16)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(ema)
    folder = directory / "step_000000005"
    accelerator.save_state(str(folder))
    (folder / "position.json").write_text(json.dumps({"step": 5, "epoch": 0, "batch": 5, "extra": {}}))
    assert (folder / "custom_checkpoint_0.pkl").is_file() and (folder / "random_states_0.pkl").is_file()
    plant(folder / "custom_checkpoint_0.pkl", marker, "torch-zip")
    plant(folder / "random_states_0.pkl", marker, "pickle")
    return folder


def test_folders_of_the_previous_version_are_refused_with_the_way_to_continue(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    folder = write_legacy_folder(tmp_path / "out" / "checkpoints", tmp_path, marker)
    for mode in ("auto", str(folder), str(tmp_path / "out")):
        with pytest.raises(ResumeError) as err:
            manager(tmp_path / "out" / "checkpoints", tmp_path, ("ema",)).resume(mode)
        message = str(err.value)
        assert "refusing to resume" in message and "custom_checkpoint_0.pkl" in message
        assert f"model.checkpoint={folder / 'model.safetensors'}" in message and "new --output-dir" in message
        assert not marker.exists()
    # What the message suggests works: the weights of that folder are safetensors and load as a model.
    assert resmlp.create_model("resmlp_tiny", checkpoint=folder / "model.safetensors").config.num_classes == 10


def test_vision_train_refuses_an_old_folder_in_one_line(tmp_path, capsys):
    marker = tmp_path / "PAYLOAD_RAN"
    out = tmp_path / "out"
    write_legacy_folder(out / "checkpoints", tmp_path, marker)
    argv = ["--recipe", str(REPO / "recipes/vision/resmlp_digits.yaml"), "--output-dir", str(out), *VISION]
    with pytest.raises(SystemExit) as exit_info:
        vision_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and "refusing to resume" in err[-1] and "custom_checkpoint_0.pkl" in err[-1]
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins.exec", "builtins.eval", "os.system", "subprocess.Popen"])
def test_the_safe_load_refusal_never_suggests_allowing_code(tmp_path, target):
    module, name = target.split(".")
    payload = type("Call", (), {"__reduce__": lambda self: (getattr(__import__(module), name), ("0",))})
    torch.save({"x": payload()}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        safe_load(tmp_path / "bad.pth")
    message = str(err.value)
    assert target in message.replace("posix.", "os.") and "runs code" in message
    assert "allow_globals" not in message and "weights_only=False" not in message


def test_the_safe_load_refusal_offers_the_opt_in_for_a_data_class(tmp_path):
    torch.save({"x": Path("a")}, tmp_path / "path.pth")  # pathlib.PosixPath: a plain data class, not code
    with pytest.raises(CheckpointError, match=r"Only if you trust this file .*allow_globals\(PosixPath\)"):
        safe_load(tmp_path / "path.pth")


def test_nothing_in_a_new_checkpoint_is_a_pickle(runs):
    for run in runs.values():
        for file in (run / "checkpoints" / "step_000000002").iterdir():
            head = file.read_bytes()[:2]
            assert head not in (b"\x80\x02", b"\x80\x04", b"\x80\x05", b"PK"), f"{file} looks like a pickle"
            assert os.path.getsize(file) > 0
