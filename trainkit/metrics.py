"""Evaluation metrics as JSON lines (``OUTPUT_DIR/metrics.jsonl``) plus TensorBoard, safe across kills and resumes.

One JSON object per evaluation: ``evaluation`` records at least ``epoch``, ``step``, ``top1``, ``top5`` (percent)
and ``loss`` (a classifier's evaluation), ``record`` any numbers (DINO: ``knn_top1``, ``teacher_entropy`` ...);
callers add what they like (``train_loss``, ``lr``, ``ema_top1`` ...) and ``epochs``, the training progress in
epochs that the curves are drawn against (0 before the first step). Each line is written with a single
``write`` and fsynced; a line torn by a kill is ignored when reading. When a run resumes from step S, lines logged
after S by the interrupted run are dropped, so the file describes one continuous run::

    log = MetricsLogger(output_dir, accelerator, resume_step=start.step)
    window = WindowMean()                                             # the training loss between two logs
    window.add(loss)                                                  # every step, no device sync
    log.train(step, loss=window.compute(accelerator), lr=lr)          # TensorBoard only: train/loss, train/lr
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

import torch

from .durable import write_text_atomic

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
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        return len(records) - len(kept)


class WindowMean:
    """Mean of a per-step value (the training loss) over a window of steps and over all processes.

    ``add`` keeps a running sum on the value's device without synchronising; ``compute`` reduces the sums of every
    process (a collective: all processes call it), returns the mean and starts a new window. ``state``/``restore``
    carry an unfinished window through a checkpoint (a JSON pair), so a resumed run logs the same numbers.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.count = 0
        self.carried = (0.0, 0)  # sum and count of the steps before a resume (already over all processes)

    def add(self, value: torch.Tensor | float) -> None:
        value = value.detach().double() if isinstance(value, torch.Tensor) else float(value)
        self.total = self.total + value
        self.count += 1

    def state(self, accelerator=None) -> list[float]:
        """``[sum, count]`` over all processes so far in this window (a collective); the window goes on."""
        total, count = self._reduced(accelerator)
        return [total, count]

    def restore(self, state: list[float] | None) -> None:
        """Continue the window saved by ``state``; call it on every process with the same ``state``."""
        self.total, self.count = 0.0, 0
        self.carried = (float(state[0]), int(state[1])) if state else (0.0, 0)

    def compute(self, accelerator=None) -> float:
        """The window's mean over every process and step (NaN for an empty window); starts a new window."""
        total, count = self._reduced(accelerator)
        self.total, self.count, self.carried = 0.0, 0, (0.0, 0)
        return total / count if count else math.nan

    def _reduced(self, accelerator) -> tuple[float, int]:
        device = accelerator.device if accelerator is not None else "cpu"
        total = torch.as_tensor(self.total, dtype=torch.float64).reshape(()).to(device)
        pair = torch.stack([total, torch.tensor(float(self.count), dtype=torch.float64, device=device)])
        if accelerator is not None and accelerator.num_processes > 1:
            pair = accelerator.reduce(pair, reduction="sum")
        total, count = pair.tolist()
        # The carried part is already a sum over all processes, and every process holds the same copy of it.
        return total + self.carried[0], int(count) + self.carried[1]


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

    def record(self, *, epoch: int, step: int, **metrics: Any) -> None:
        """Record one evaluation of any kind (DINO's k-NN ...); every process may call it, the main one writes."""
        record = {"epoch": epoch, "step": step}
        record |= {k: (float(v) if hasattr(v, "item") else v) for k, v in metrics.items()}
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
