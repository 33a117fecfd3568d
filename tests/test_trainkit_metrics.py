"""Logging (trainkit.metrics, trainkit.curves, trainkit.progress): metrics.jsonl, TensorBoard, curves PNG, bar."""

from __future__ import annotations

import json

import pytest

from trainkit.accel import build_accelerator
from trainkit.curves import plot_curves
from trainkit.metrics import JsonlWriter, MetricsLogger, read_jsonl
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
