"""Logging (trainkit.metrics, trainkit.curves, trainkit.progress): metrics.jsonl, TensorBoard, curves PNG, bar."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from trainkit.accel import build_accelerator
from trainkit.curves import Panel, plot_curves
from trainkit.metrics import JsonlWriter, MetricsLogger, WindowMean, read_jsonl
from trainkit.progress import ProgressBar
from trainkit.sections import RunConfig


def test_jsonl_appends_skips_a_torn_line_and_keeps_writing_after_it(tmp_path):
    writer = JsonlWriter(tmp_path / "m.jsonl")
    writer.append({"step": 1, "top1": 10.0})
    with open(writer.path, "a") as handle:
        handle.write('{"step": 2, "top1": 2')  # a kill in the middle of a line
    writer.append({"step": 3, "top1": float("nan")})  # NaN is not JSON: stored as null
    assert read_jsonl(writer.path) == [{"step": 1, "top1": 10.0}, {"step": 3, "top1": None}]
    assert all(json.loads(line) for line in writer.path.read_text().splitlines() if line.endswith("}"))


def test_resume_drops_records_after_the_resumed_step(tmp_path):
    log = MetricsLogger(tmp_path)
    for epoch, step in enumerate((10, 20, 30)):
        log.evaluation(epoch=epoch, step=step, top1=50.0 + epoch, top5=90.0, loss=1.0)
    resumed = MetricsLogger(tmp_path, resume_step=20)  # the run died after step 30's record, resumed from 20
    resumed.evaluation(epoch=2, step=30, top1=60.0, top5=95.0, loss=0.5, train_loss=0.7)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["top1"]) for r in records] == [(10, 50.0), (20, 51.0), (30, 60.0)]
    assert set(records[-1]) == {"epoch", "step", "top1", "top5", "loss", "train_loss"}


def test_metrics_reach_tensorboard(tmp_path):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = build_accelerator(RunConfig(tensorboard=True), tmp_path)
    accelerator.init_trackers("run", config={"optim.lr": 0.1})
    log = MetricsLogger(tmp_path, accelerator)
    log.train(5, loss=2.0, lr=0.1)
    log.evaluation(epoch=0, step=5, top1=12.0, top5=50.0, loss=2.1)
    accelerator.end_training()
    AcceleratorState._reset_state(reset_partial_state=True)
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 200
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["top1"] == 12.0


def test_curves_png_from_metrics(tmp_path):
    log = MetricsLogger(tmp_path)
    for epoch in range(4):
        log.evaluation(epoch=epoch, step=epoch * 10, top1=20.0 * epoch, top5=25.0 * epoch, loss=2.0 - 0.4 * epoch)
    png = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png", title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no evaluation records"):
        plot_curves(tmp_path / "empty.jsonl", tmp_path / "none.png")


def test_progress_bar_measures_images_per_second():
    bar = ProgressBar(100, None, images_per_step=64)
    bar.update(10, loss=2.0, lr=1e-3)
    assert bar.images_per_second > 0 and bar.bar.n == 10
    bar.update(30, loss=1.5, lr=1e-3, top1=50.0)
    assert bar.bar.n == 30 and "img/s" in str(bar.bar.postfix)
    bar.close()


def test_window_mean_is_the_mean_over_steps_and_survives_a_checkpoint():
    window = WindowMean()
    for value in (1.0, 2.0, torch.tensor(3.0), torch.tensor(6.0)):
        window.add(value)
    assert window.compute() == 3.0 and math.isnan(window.compute())  # a new window starts empty
    window.add(1.0)
    window.add(2.0)
    saved = window.state()  # [sum, count], JSON for position.json
    resumed = WindowMean()
    resumed.restore(saved)
    resumed.add(6.0)
    assert saved == [3.0, 2] and resumed.compute() == 3.0


def _window_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ.update(MASTER_PORT=str(port), ACCELERATE_USE_CPU="1")
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    window = WindowMean()
    for value in [1.0, 2.0] if rank == 0 else [10.0, 20.0, 30.0]:  # uneven counts: a mean over every step
        window.add(torch.tensor(value))
    Path(out, f"rank{rank}.json").write_text(json.dumps(window.compute(accelerator)))
    accelerator.end_training()


def test_window_mean_spans_every_process(tmp_path):
    import multiprocessing
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_window_worker, args=(r, port, str(tmp_path))) for r in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    means = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert means == [63.0 / 5, 63.0 / 5]  # not rank 0's 1.5


def test_curves_plot_chosen_panels_against_epochs_trained_from_zero(tmp_path, monkeypatch):
    import matplotlib.figure

    log = MetricsLogger(tmp_path)
    log.record(epoch=-1, step=0, epochs=0.0, knn_top1=40.0)
    log.record(epoch=0, step=10, epochs=1.0, knn_top1=60.0, train_loss=5.0, teacher_entropy=2.0)
    drawn = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, path, **kwargs):
        for ax in fig.axes:
            drawn[ax.get_title()] = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines()}
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    panels = [
        Panel("DINO loss", "loss", (("train_loss", "training loss"),)),
        Panel("k-NN", "accuracy (%)", (("knn_top1", "k-NN top-1"), ("knn_top5", "k-NN top-5"))),
    ]
    plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png", panels=panels)
    assert drawn["k-NN"] == {"k-NN top-1": [0.0, 1.0]}  # from epoch 0; a key absent from every record is left out
    assert drawn["DINO loss"] == {"training loss": [0.0, 1.0]}
    assert "eval loss" not in str(drawn)
