"""evaluate(): top-1/top-5 on a model whose outputs we control, ReaL and ImageNet-V2 labels, the command line."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

import resmlp
from resmlp.checkpoint import CheckpointError
from trainkit.data import CheckedImageFolder
from vision.data import DataError, ImageNetV2Folder, load_real_labels, real_top1
from vision.evaluate import evaluate, main


class RankedLogits(nn.Module):
    """Logits that place the true class of sample ``i`` at rank ``ranks[i]`` (the input is the sample index)."""

    def __init__(self, targets: list[int], ranks: list[int], num_classes: int) -> None:
        super().__init__()
        table = torch.zeros(len(targets), num_classes)
        for i, (target, rank) in enumerate(zip(targets, ranks)):
            others = [c for c in range(num_classes) if c != target]
            order = others[:rank] + [target] + others[rank:]
            table[i, order] = torch.arange(num_classes, 0, -1, dtype=torch.float32)  # first = highest score
        self.register_buffer("table", table)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index]


class IndexDataset(Dataset):
    def __init__(self, targets: list[int]) -> None:
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[int, int]:
        return i, self.targets[i]


TARGETS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
RANKS = [0, 0, 0, 0, 1, 4, 4, 5, 9, 2]  # top-1 hits: 4 of 10; top-5 hits: 8 of 10


def test_top1_top5_on_controlled_outputs() -> None:
    model = RankedLogits(TARGETS, RANKS, num_classes=10).train()
    results = evaluate(model, DataLoader(IndexDataset(TARGETS), batch_size=3))
    assert results["top1"] == pytest.approx(40.0) and results["top5"] == pytest.approx(80.0)
    assert results["images"] == 10 and model.training  # the previous mode is restored


def test_loss_and_top5_with_fewer_than_five_classes() -> None:
    model = RankedLogits([0, 1, 2], [1, 2, 0], num_classes=3)
    results = evaluate(model, DataLoader(IndexDataset([0, 1, 2]), batch_size=2))
    assert results["top1"] == pytest.approx(100 / 3) and results["top5"] == 100.0  # top-5 = top-3 here
    uniform = nn.Linear(1, 4)
    nn.init.zeros_(uniform.weight), nn.init.zeros_(uniform.bias)
    loader = [(torch.ones(2, 1), torch.tensor([0, 3]))]
    assert evaluate(uniform, loader)["loss"] == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_unreadable_images_marked_minus_one_are_skipped() -> None:
    targets = [0, 1, -1, 3]
    model = RankedLogits([0, 1, 0, 3], [0, 1, 0, 0], num_classes=5)
    results = evaluate(model, DataLoader(IndexDataset(targets), batch_size=4))
    assert results["images"] == 3 and results["skipped"] == 1 and results["top1"] == pytest.approx(200 / 3)


def _gather_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        ACCELERATE_USE_CPU="1",
    )
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = RankedLogits(TARGETS[:7], RANKS[:7], num_classes=10)
    loader = accelerator.prepare(DataLoader(IndexDataset(TARGETS[:7]), batch_size=2))
    # ReaL labels equal to the targets: ReaL top-1 equals top-1 only if the gathered predictions keep dataset order.
    results = evaluate(model, loader, accelerator, real_labels=[[t] for t in TARGETS[:7]])
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))
    accelerator.wait_for_everyone()
    accelerator.end_training()


def test_two_processes_count_every_validation_image_once(tmp_path: Path) -> None:
    # 7 images over 2 processes with batch 2: accelerate pads the last batch; gather_for_metrics drops the pad.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = multiprocessing.get_context("spawn")  # fork after torch started threads can deadlock
    workers = [context.Process(target=_gather_worker, args=(r, port, str(tmp_path))) for r in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    for rank in range(2):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert results["images"] == 7  # top-1 hits among the first 7: ranks 0, 0, 0, 0, 1, 4, 4
        assert results["top1"] == pytest.approx(400 / 7) and results["top5"] == pytest.approx(100.0)
        assert results["real_top1"] == pytest.approx(400 / 7) and results["real_images"] == 7


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)


def test_real_labels_follow_file_names_not_folder_order(tmp_path: Path) -> None:
    # Files in sorted name order: a.png (folder z), b.png (folder y), c.png (folder y), d.png (folder z).
    for folder, name in (("z", "a"), ("y", "b"), ("y", "c"), ("z", "d")):
        _image(tmp_path / "val" / folder / f"{name}.png", 0)
    real = tmp_path / "real.json"
    real.write_text(json.dumps([[1], [2, 3], [], [4]]))  # for a, b, c, d
    dataset = CheckedImageFolder(tmp_path / "val")  # dataset order: y/b, y/c, z/a, z/d
    aligned = load_real_labels(real, [p for p, _ in dataset.samples])
    assert aligned == [[2, 3], [], [1], [4]]
    accuracy, counted = real_top1([3, 0, 1, 0], aligned)  # b right, c skipped (no label), a right, d wrong
    assert counted == 3 and accuracy == pytest.approx(200 / 3)
    real.write_text(json.dumps([[1], [2]]))
    with pytest.raises(DataError, match="2 entries but the validation set has 4 images"):
        load_real_labels(real, [p for p, _ in dataset.samples])


def test_imagenetv2_labels_reach_the_metrics(tmp_path: Path) -> None:
    for k in range(12):
        _image(tmp_path / str(k) / f"{k}.jpeg", value=20 * k)
    dataset = ImageNetV2Folder(tmp_path, transform=lambda im: torch.tensor(im.getpixel((0, 0))[0] // 20))
    model = RankedLogits(list(range(12)), [0] * 12, num_classes=12)  # predicts class k for brightness 20 k
    assert evaluate(model, DataLoader(dataset, batch_size=5))["top1"] == 100.0


def test_cli_evaluates_a_saved_checkpoint_on_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process main() runs the whole command line (argparse, loading, data, metrics, JSON); `python -m
    # vision.evaluate` only adds `sys.exit(main())`, and a subprocess would cost the suite seconds of imports.
    checkpoint = resmlp.save_model(resmlp.create_model("resmlp_tiny"), tmp_path / "tiny.pth")
    out = tmp_path / "metrics.json"
    argv = ["--checkpoint", str(checkpoint), "--data", "digits", "--json", str(out), "--num-workers", "0"]
    assert main([*argv, "--crop-ratio", "0.9"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["images"] == 359 and 0 <= metrics["top1"] <= metrics["top5"] <= 100
    assert "digits: images 359 | top1" in capsys.readouterr().out and metrics["crop_ratio"] == 0.9


def test_cli_bad_input_exits_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = resmlp.save_model(resmlp.create_model("resmlp_tiny"), tmp_path / "tiny.pth")
    cases = [  # status 2: an option written wrong; status 1: a file or folder that cannot be used
        (["--checkpoint", str(tmp_path / "missing.pth"), "--data", "digits"], 1, "checkpoint not found"),
        (["--checkpoint", str(checkpoint), "--data", f"imagenet:{tmp_path / 'nope'}"], 1, "data folder not found"),
        (["--checkpoint", str(checkpoint), "--data", f"cifar10:{tmp_path}"], 1, "cifar10 not found"),
        (["--checkpoint", str(checkpoint), "--data", "procedural"], 1, "says 10 classes but the data has 12"),
        (["--checkpoint", str(checkpoint), "--data", "mnist"], 2, "unknown dataset 'mnist'"),
        (["--checkpoint", str(checkpoint), "--data", str(tmp_path)], 2, f"--data=folder:{tmp_path}"),
        (["--checkpoint", str(checkpoint)], 2, "pass --data"),
        (["--checkpoint", str(checkpoint), "--data", "digits", "--checkpoint-key", "student"], 1, "own format"),
    ]
    for argv, status, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == status and message in err and err.count("\n") == 1, err
        assert "Traceback" not in err


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real vision.train run: 16 px digits, eval.crop_ratio 1.0 (not the default 0.9), 2 steps."""
    from trainkit import load_recipe
    from vision.recipe import VisionRecipe
    from vision.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "vision" / "resmlp_digits.yaml"
    overrides = ["model.name=resmlp_tiny", "run.batch_size=16", "run.max_steps=2", "run.tensorboard=false"]
    out = tmp_path_factory.mktemp("run") / "digits"
    train(load_recipe(VisionRecipe, recipe, overrides), out)
    return out


def _evaluate(capsys, argv) -> tuple[dict, str]:
    assert main([*argv, "--num-workers", "0", "--json", str(Path(argv[1]).parent / "eval.json")]) == 0
    out = capsys.readouterr().out
    return json.loads((Path(argv[1]).parent / "eval.json").read_text()), out


def test_cli_takes_the_run_s_own_eval_settings_and_says_which(run_folder, capsys):
    from_run, out = _evaluate(capsys, ["--checkpoint", str(run_folder / "model.pth")])  # no --data, no crop
    assert "crop ratio 1.0 (from " in out and str(run_folder / "config.yaml") in out
    assert "resize the short side to 16 px (bicubic), centre crop 16 px" in out
    assert (from_run["data"], from_run["crop_ratio"], from_run["builtin_size"], from_run["resize"]) == (
        "digits",
        1.0,
        16,
        16,
    )
    explicit, _ = _evaluate(
        capsys, ["--checkpoint", str(run_folder / "model.pth"), "--ignore-run-config", "--data", "digits",
                 "--builtin-size", "16", "--crop-ratio", "1.0"],
    )  # fmt: skip
    assert explicit["top1"] == from_run["top1"] and explicit["loss"] == from_run["loss"]
    default, out = _evaluate(
        capsys, ["--checkpoint", str(run_folder / "model.pth"), "--ignore-run-config", "--data", "digits"]
    )
    assert "crop ratio 0.9 (the default)" in out and default["loss"] != from_run["loss"]
    option, out = _evaluate(capsys, ["--checkpoint", str(run_folder / "model.pth"), "--crop-ratio", "0.8"])
    assert "crop ratio 0.8 (from the command line)" in out and option["builtin_size"] == 16


def test_cli_evaluates_a_checkpoint_folder_with_the_run_s_model(run_folder, capsys):
    step = sorted((run_folder / "checkpoints").glob("step_*"))[-1]
    folder, _ = _evaluate(capsys, ["--checkpoint", str(step)])
    final, _ = _evaluate(capsys, ["--checkpoint", str(run_folder / "model.pth")])
    assert folder["top1"] == final["top1"] and folder["loss"] == pytest.approx(final["loss"], abs=1e-6)


def test_checkpoint_key_is_honoured_or_refused_for_every_format(tmp_path):
    from vision.evaluate import load_model_for_eval

    torch.manual_seed(0)
    model, ema = resmlp.create_model("resmlp_tiny"), resmlp.create_model("resmlp_tiny")
    torch.save({"model": model.state_dict(), "model_ema": ema.state_dict()}, tmp_path / "deit.pth")
    loaded = load_model_for_eval(tmp_path / "deit.pth", "resmlp_tiny", key="model_ema")
    assert torch.equal(loaded.head.weight, ema.head.weight) and not torch.equal(loaded.head.weight, model.head.weight)
    with pytest.raises(CheckpointError, match=r"no entry 'teacher'; it has \['model', 'model_ema'\]"):
        load_model_for_eval(tmp_path / "deit.pth", "resmlp_tiny", key="teacher")
    ours = resmlp.save_model(model, tmp_path / "ours.pth")
    assert torch.equal(load_model_for_eval(ours, key="model").head.weight, model.head.weight)
    with pytest.raises(CheckpointError, match="own format, which holds one model"):
        load_model_for_eval(ours, key="student")
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_model_for_eval(tmp_path / "plain.pth", "resmlp_tiny", key="model_ema")
