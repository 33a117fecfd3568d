"""Evaluation metrics as JSON lines (``OUTPUT_DIR/metrics.jsonl``) plus TensorBoard, safe across kills and resumes.

One JSON object per evaluation, at least ``epoch``, ``step``, ``top1``, ``top5`` (percent) and ``loss``; callers
add what they like (``train_loss``, ``lr``, ``top1_ema``, ``knn_top1`` ...). Each line is written with a single
``write`` and fsynced; a line torn by a kill is ignored when reading. When a run resumes from step S, lines logged
after S by the interrupted run are dropped, so the file describes one continuous run::

    log = MetricsLogger(output_dir, accelerator, resume_step=start.step)
    log.train(step, loss=loss.item(), lr=lr)                         # TensorBoard only: train/loss, train/lr
    log.evaluation(epoch=epoch, step=step, top1=81.2, top5=95.4, loss=0.91, train_loss=2.3)
    ...
    plot_curves(output_dir / "metrics.jsonl", output_dir / "curves.png")   # trainkit.curves
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
REQUIRED = ("epoch", "step", "top1", "top5", "loss")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete JSON objects of a JSON-lines file; a torn or garbled line (a kill mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class JsonlWriter:
    """Append-only JSON-lines file: one fsynced line per record, valid JSON only (NaN/inf written as null)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = json.dumps(clean, sort_keys=False) + "\n"
        # A file torn by a kill may end without a newline; start on a fresh line so the new record stays readable.
        prefix = "\n" if self.path.is_file() and self.path.stat().st_size and not self._ends_with_newline() else ""
        with open(self.path, "a") as handle:
            handle.write(prefix + line)
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def drop_after(self, step: int) -> int:
        """Rewrite the file atomically without records whose ``step`` exceeds ``step``; returns how many went."""
        records = read_jsonl(self.path)
        kept = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= step]
        if not self.path.is_file() or (len(kept) == len(records) and self._ends_with_newline()):
            return 0
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        return len(records) - len(kept)


class MetricsLogger:
    """Evaluations to ``metrics.jsonl`` and TensorBoard; training scalars to TensorBoard. Main process writes.

    Args:
        output_dir: The run's output directory.
        accelerator: The run's Accelerator (its trackers receive every scalar); None logs to the file only.
        resume_step: The step training resumes from; records after it (from an interrupted run) are dropped.
    """

    def __init__(self, output_dir: str | os.PathLike, accelerator=None, *, resume_step: int | None = None) -> None:
        self.writer = JsonlWriter(Path(output_dir) / METRICS_FILE)
        self.accelerator = accelerator
        self.is_main = accelerator is None or accelerator.is_main_process
        if self.is_main and resume_step is not None:
            self.writer.drop_after(resume_step)
        if accelerator is not None:
            accelerator.wait_for_everyone()

    @property
    def path(self) -> Path:
        return self.writer.path

    def evaluation(self, *, epoch: int, step: int, top1: float, top5: float, loss: float, **more: Any) -> None:
        """Record one evaluation (accuracies in percent). Every process may call it; only the main one writes."""
        record = {"epoch": epoch, "step": step, "top1": float(top1), "top5": float(top5), "loss": float(loss)}
        record |= {k: (float(v) if hasattr(v, "item") else v) for k, v in more.items()}
        if self.is_main:
            self.writer.append(record)
        scalars = {f"eval/{k}": v for k, v in record.items() if k not in ("epoch", "step") and _is_number(v)}
        self._track(scalars | {"epoch": epoch}, step)

    def train(self, step: int, **scalars: float) -> None:
        """Training scalars (loss, lr, images/s ...) to TensorBoard under ``train/``."""
        self._track({f"train/{k}": float(v) for k, v in scalars.items()}, step)

    def _track(self, scalars: dict[str, Any], step: int) -> None:
        if self.accelerator is not None and self.accelerator.trackers:
            self.accelerator.log(scalars, step=step)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
