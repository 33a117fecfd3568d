"""Every command answers bad input with one line naming the problem and the fix: no traceback, status 2 for a wrong
option or recipe key, 1 for a file or folder that cannot be used; ``--debug`` shows the traceback.

The commands run in-process through their ``main`` (the same code ``python -m`` runs; ``resmlp.cli`` turns the
error into the line and the status), and a few as real subprocesses to check the process's own stderr and status.
Each failure happens before the first training step: the output folder is checked (writable) before anything is
written, data and weights before the first step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

import resmlp
from bench.train_teacher import main as teacher_main
from ssl_dino import knn, linear
from ssl_dino.train import main as dino_main
from vision.evaluate import main as evaluate_main
from vision.train import main as vision_main

REPO = Path(__file__).resolve().parents[1]
VISION_RECIPE = str(REPO / "recipes/vision/resmlp_digits.yaml")
DINO_RECIPE = str(REPO / "recipes/dino/resmlp_tiny_test.yaml")
VISION = ["model.name=resmlp_tiny", "data.builtin_size=16", "run.batch_size=8", "run.max_steps=2"]
VISION += ["run.tensorboard=false", "model.img_size=16"]
DINO = ["run.max_steps=2", "monitor.every_epochs=0", "run.tensorboard=false"]


def one_line_error(capsys, main, argv, status: int, *fragments: str) -> str:
    """Run ``main(argv)``; it must exit with ``status`` and print exactly one stderr line holding ``fragments``."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line or "Traceback" in line]
    assert exit_info.value.code == status, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def image_folder(root: Path, *, corrupt: str | None = None, size: int = 16, per_class: int = 8) -> Path:
    """``root/{train,val}/{dark,light}/*.png``; ``corrupt`` names a file (``train/light/5.png``) made unreadable."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", per_class), ("val", per_class // 2)):
        for label, shade in (("dark", 40), ("light", 215)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = 20 * torch.randn(size, size, 3, generator=generator)
                Image.fromarray((shade + noise).clamp(0, 255).to(torch.uint8).numpy()).save(folder / f"{i}.png")
    if corrupt:
        data = (root / corrupt).read_bytes()
        (root / corrupt).write_bytes(data[: len(data) // 3])  # a truncated PNG
    return root


@contextmanager
def read_only(path: Path):
    """Make ``path`` unwritable, also for root (who ignores permission bits): chattr +i when running as root."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# ---------------------------------------------------------------- vision.train
def test_vision_train_bad_recipe_key_and_value_are_usage_errors(tmp_path, capsys):
    base = ["--recipe", VISION_RECIPE, "--output-dir", str(tmp_path / "a"), *VISION]
    one_line_error(capsys, vision_main, [*base, "optim.lrr=1"], 2, "unknown key 'optim.lrr'", "optim.lr")
    one_line_error(capsys, vision_main, [*base, "data.dataset=mnist"], 2, "unknown dataset 'mnist'", "data grammar")
    one_line_error(capsys, vision_main, [*base, "data.root=/x"], 2, "data.root", "data.dataset=folder:")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    one_line_error(capsys, vision_main, [*base, "model.img_size=18"], 2, "not divisible by patch_size 4")


def test_vision_train_data_errors(tmp_path, capsys):
    base = ["--recipe", VISION_RECIPE, *VISION]
    missing = tmp_path / "missing"
    one_line_error(
        capsys, vision_main, [*base, "--output-dir", str(tmp_path / "a"), f"data.dataset=folder:{missing}"], 1,
        f"data folder not found: {missing}",
    )  # fmt: skip
    one_line_error(
        capsys, vision_main, [*base, "--output-dir", str(tmp_path / "b"), "data.num_classes=7"], 1,
        "says 7 classes but the data has 10",
    )  # fmt: skip


def test_vision_train_corrupt_image_names_the_file_and_the_recipe_option(tmp_path, capsys):
    data = image_folder(tmp_path / "data", corrupt="train/light/5.png")
    argv = ["--recipe", VISION_RECIPE, "--output-dir", str(tmp_path / "out"), *VISION, f"data.dataset=folder:{data}"]
    argv += ["run.num_workers=1", "run.max_steps=4"]  # the error happens in a DataLoader worker, mid-epoch
    one_line_error(
        capsys, vision_main, argv, 1, f"cannot read image {data / 'train/light/5.png'}", "data.skip_corrupt_images=true"
    )
    assert vision_main([*argv, "data.skip_corrupt_images=true"]) == 0  # the option the message names works


def test_vision_train_checkpoint_and_resume_errors(tmp_path, capsys):
    base = ["--recipe", VISION_RECIPE, *VISION]
    one_line_error(
        capsys, vision_main, [*base, "--output-dir", str(tmp_path / "a"), f"model.checkpoint={tmp_path / 'no.pth'}"],
        1, "model.checkpoint", "no such file",
    )  # fmt: skip
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    one_line_error(
        capsys, vision_main, [*base, "--output-dir", str(tmp_path / "b"), f"model.checkpoint={broken}"], 1,
        f"cannot read checkpoint {broken}",
    )  # fmt: skip
    one_line_error(
        capsys, vision_main, [*base, "--output-dir", str(tmp_path / "c"), f"run.resume={tmp_path / 'nowhere'}"], 1,
        "no complete checkpoint there",
    )  # fmt: skip
    assert vision_main([*base, "--output-dir", str(tmp_path / "d")]) == 0
    one_line_error(
        capsys,
        vision_main,
        [*base, "--output-dir", str(tmp_path / "d"), "run.resume=off"],
        1,
        "already holds checkpoints",
    )


def test_vision_train_refuses_a_read_only_output_folder_before_step_0(tmp_path, capsys):
    with read_only(tmp_path / "ro") as folder:
        argv = ["--recipe", VISION_RECIPE, "--output-dir", str(folder / "run"), *VISION]
        one_line_error(capsys, vision_main, argv, 1, f"cannot write to {folder / 'run'}", "--output-dir")
    # Writable output folder, but its checkpoints/ is not: the first save would fail, so the run does not start.
    (tmp_path / "out" / "checkpoints").mkdir(parents=True)
    with read_only(tmp_path / "out" / "checkpoints") as checkpoints:
        argv = ["--recipe", VISION_RECIPE, "--output-dir", str(tmp_path / "out"), *VISION]
        one_line_error(capsys, vision_main, argv, 1, f"cannot write to {checkpoints}")
    assert not (tmp_path / "out" / "metrics.jsonl").exists() and not (tmp_path / "out" / "model.pth").exists()


def test_vision_train_refuses_when_the_disk_cannot_hold_a_checkpoint(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    argv = ["--recipe", VISION_RECIPE, "--output-dir", str(tmp_path / "run"), *VISION]
    one_line_error(capsys, vision_main, argv, 1, "free but one checkpoint needs about", "free some space")
    assert not list((tmp_path / "run" / "checkpoints").iterdir())


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="unknown key 'optim.lrr'"):
        vision_main(["--recipe", VISION_RECIPE, "--output-dir", str(tmp_path), "optim.lrr=1", "--debug"])


def test_help_lists_every_recipe_section_and_key_with_its_default(capsys):
    for main, keys in (
        (vision_main, ["model.name = resmlp_s12", "optim.lr = 0.005", "data.dataset = digits", "run.resume = auto"]),
        (dino_main, ["dino.momentum_teacher = 0.996", "crops.policy = derived", "optim.name = adamw"]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        for key in keys:
            assert key in out, key
        assert "data.skip_corrupt_images = false" in out and "--debug" in out
    # Descriptions come from the docstrings.
    with pytest.raises(SystemExit):
        vision_main(["--help"])
    assert "Decoupled weight decay on weight matrices only" in capsys.readouterr().out


# ---------------------------------------------------------------- vision.evaluate
def test_vision_evaluate_corrupt_image_in_a_worker_is_one_line_naming_its_own_option(tmp_path, capsys):
    data = image_folder(tmp_path / "data", corrupt="val/dark/1.png")
    model = resmlp.create_model("resmlp_tiny", num_classes=2)
    checkpoint = resmlp.save_model(model, tmp_path / "m.pth")
    argv = ["--checkpoint", str(checkpoint), "--data", f"folder:{data}", "--num-workers", "2", "--batch-size", "2"]
    line = one_line_error(capsys, evaluate_main, argv, 1, f"{data / 'val/dark/1.png'}", "--skip-corrupt-images")
    assert "Caught" not in line and "data.skip_corrupt_images" not in line and len(line) < 400
    assert evaluate_main([*argv, "--skip-corrupt-images"]) == 0
    assert "skipped 1" in capsys.readouterr().out


# ---------------------------------------------------------------- ssl_dino.train
def test_dino_train_recipe_errors_are_one_line(tmp_path, capsys):
    base = ["--recipe", DINO_RECIPE, "--output-dir", str(tmp_path / "a"), *DINO]
    one_line_error(capsys, dino_main, [*base, "dino.momentm_teacher=0.9"], 2, "dino.momentum_teacher")
    one_line_error(capsys, dino_main, [*base, f"data.dataset={tmp_path}"], 2, f"data.dataset=folder:{tmp_path}")
    one_line_error(capsys, dino_main, [*base, "optim.ema_decay=0.9"], 2, "DINO teacher is the EMA")
    assert not (tmp_path / "a").exists()


def test_dino_train_data_resume_and_output_errors(tmp_path, capsys):
    base = ["--recipe", DINO_RECIPE, *DINO]
    missing = tmp_path / "missing"
    one_line_error(
        capsys, dino_main, [*base, "--output-dir", str(tmp_path / "a"), f"data.dataset=folder:{missing}"], 1,
        f"data folder not found: {missing}",
    )  # fmt: skip
    one_line_error(
        capsys, dino_main, [*base, "--output-dir", str(tmp_path / "b"), f"run.resume={tmp_path / 'nowhere'}"], 1,
        "no complete checkpoint there",
    )  # fmt: skip
    with read_only(tmp_path / "ro") as folder:
        one_line_error(capsys, dino_main, [*base, "--output-dir", str(folder / "run")], 1, "cannot write to")


def test_dino_train_corrupt_image_names_the_file_and_the_option(tmp_path, capsys):
    data = image_folder(tmp_path / "data", corrupt="train/dark/3.png")
    argv = ["--recipe", DINO_RECIPE, "--output-dir", str(tmp_path / "out"), *DINO, f"data.dataset=folder:{data}"]
    argv += ["run.batch_size=4", "run.max_steps=4"]
    one_line_error(capsys, dino_main, argv, 1, f"{data / 'train/dark/3.png'}", "data.skip_corrupt_images=true")
    assert dino_main([*argv, "data.skip_corrupt_images=true"]) == 0


def test_dino_train_warns_when_the_schedule_is_too_short_for_the_teacher(tmp_path, capsys):
    assert dino_main(["--recipe", DINO_RECIPE, "--output-dir", str(tmp_path / "out"), *DINO]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the teacher keeps" in out and "Lower dino.momentum_teacher to" in out


# ---------------------------------------------------------------- ssl_dino.knn / .linear
@pytest.mark.parametrize("command", [knn, linear], ids=["knn", "linear"])
def test_dino_evaluation_commands_answer_bad_input_in_one_line(tmp_path, capsys, command):
    main = command.main
    one_line_error(capsys, main, ["--data", "digits"], 2, "pass --checkpoint PATH")
    one_line_error(capsys, main, ["--checkpoint", str(tmp_path / "no.pth")], 1, "checkpoint not found")
    one_line_error(capsys, main, ["--random-init", "--arch", "resmlp_s99"], 2, "unknown backbone 'resmlp_s99'")
    one_line_error(capsys, main, ["--random-init", "--arch", "resmlp_tiny", "--data", "nope"], 2, "unknown dataset")
    one_line_error(capsys, main, ["--load-features", str(tmp_path)], 1, "is not a feature dump")
    export = resmlp.save_model(resmlp.create_model("resmlp_tiny", num_classes=0), tmp_path / "teacher.pth")
    one_line_error(
        capsys, main, ["--checkpoint", str(export), "--checkpoint-key", "student"], 1, "own format", "checkpoint_key"
    )
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x80\x04garbage")
    one_line_error(capsys, main, ["--checkpoint", str(broken)], 1, f"cannot read checkpoint {broken}")


def test_evaluation_commands_check_where_they_write_before_the_work(tmp_path, capsys):
    checkpoint = resmlp.save_model(resmlp.create_model("resmlp_tiny"), tmp_path / "m.pth")
    with read_only(tmp_path / "ro") as folder:
        argv = ["--random-init", "--arch", "resmlp_tiny", "--results", str(folder / "r.json")]
        one_line_error(capsys, knn.main, argv, 1, f"cannot write to {folder}")
        argv = ["--random-init", "--arch", "resmlp_tiny", "--dump-features", str(folder / "features")]
        one_line_error(capsys, linear.main, argv, 1, f"cannot write to {folder / 'features'}")
        argv = ["--checkpoint", str(checkpoint), "--data", "digits", "--json", str(folder / "e.json")]
        one_line_error(capsys, evaluate_main, argv, 1, f"cannot write to {folder}")


def test_knn_corrupt_image_names_the_file_and_its_option(tmp_path, capsys):
    data = image_folder(tmp_path / "data", corrupt="val/light/0.png")
    argv = ["--random-init", "--arch", "resmlp_tiny", "--data", f"folder:{data}", "--nb-knn", "3"]
    line = one_line_error(capsys, knn.main, argv, 1, f"{data / 'val/light/0.png'}", "--skip-corrupt-images")
    assert "data.skip_corrupt_images" not in line
    assert knn.main([*argv, "--skip-corrupt-images"])[3][0] == 100.0
    assert "left out 1 unreadable image" in capsys.readouterr().out


# ---------------------------------------------------------------- the teacher trainer
def test_teacher_trainer_errors_are_one_line(tmp_path, capsys):
    recipe = str(REPO / "recipes/vision/resmlp_digits_dist.yaml")
    one_line_error(capsys, teacher_main, ["--recipe", str(tmp_path / "none.yaml")], 2, "recipe file", "does not exist")
    one_line_error(capsys, teacher_main, ["--recipe", VISION_RECIPE], 2, "pass --model and --out")
    one_line_error(capsys, teacher_main, ["--recipe", recipe, "--epochs", "0"], 2, "--epochs")
    with read_only(tmp_path / "ro") as folder:
        argv = ["--recipe", recipe, "--out", str(folder / "t.pth"), "--epochs", "1"]
        one_line_error(capsys, teacher_main, argv, 1, f"cannot write to {folder}")


# ---------------------------------------------------------------- real processes
@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [
        (
            ["-m", "vision.train", "--recipe", VISION_RECIPE, "optim.lrr=1"],
            2,
            "vision.train: error: command line: unknown key",
        ),
        (["-m", "ssl_dino.knn", "--random-init", "--arch", "resmlp_tiny", "--data", "x:"], 2, "ssl_dino.knn: error:"),
        (["-m", "vision.evaluate", "--checkpoint", "/nonexistent.pth"], 1, "vision.evaluate: error: checkpoint not"),
    ],
)
def test_a_real_process_prints_one_line_and_exits_with_the_status(argv, status, fragment):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "RANK"))}
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == status, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and fragment in proc.stderr and "Traceback" not in proc.stderr
