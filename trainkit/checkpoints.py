"""Crash-safe training checkpoints: full state every N steps and at epoch ends, keep-last-k, resume auto/path/off.

A checkpoint is a directory ``CHECKPOINTS/step_000001200/`` holding ``accelerator.save_state`` (model, optimiser,
GradScaler, per-process RNG states, every registered object such as an EMA) plus ``position.json`` (step, epoch,
batch within the epoch). The lr/wd schedules are pure functions of the step, so the step is their whole state.

Atomicity: everything is written into ``.incomplete-step_.../``, fsynced, and only then renamed to its final name
(one ``os.replace``, atomic on POSIX); the ``latest`` pointer is rewritten the same way afterwards. A kill -9 at
any moment therefore leaves either the previous checkpoints untouched or the new one complete. Deletions (rotation,
re-saving a step) first rename the directory to ``.trash-...``. On resume, hidden leftovers are ignored and removed,
and the newest *complete* checkpoint wins, whatever ``latest`` says (it is a convenience for people and tools).

Only the main process manages files; every process calls ``save``/``resume`` (they wait for each other)::

    ckpt = CheckpointManager(output_dir / "checkpoints", accelerator, keep_last=cfg.run.keep_last, extra_objects=[ema])
    start = ckpt.resume(cfg.run.resume)          # after accelerator.prepare(...); Position(step, epoch, batch)
    for epoch in range(start.epoch, epochs):
        train_loader.set_epoch(epoch)  # the prepared loader: its own epoch counter restarts at 0 after a resume
        first = start.batch if epoch == start.epoch else 0
        loader = accelerator.skip_first_batches(train_loader, first) if first else train_loader
        ...
        ckpt.save(step, epoch, batch=i + 1)      # every run.save_every_steps: resume continues after batch i
    ckpt.save(step, epoch + 1)                   # at each epoch end: resume starts the next epoch
    export_final_model(model, output_dir / "model.pth", accelerator)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSITION_FILE = "position.json"
LATEST_FILE = "latest"
_PREFIX = "step_"
_INCOMPLETE = ".incomplete-"
_TRASH = ".trash-"


class ResumeError(RuntimeError):
    """A resume request that cannot be honoured (no checkpoint at the path, or a fresh start over old ones)."""


@dataclass(frozen=True)
class Position:
    """Where training continues: ``step`` optimiser steps are done; the next batch is ``batch`` of ``epoch``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` to disk, so a rename publishes only durable data."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _discard(path: Path) -> None:
    """Rename to a hidden trash name first (atomic), then delete: a kill mid-delete leaves no half checkpoint."""
    trash = path.with_name(f"{_TRASH}{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def is_complete(path: Path) -> bool:
    """A checkpoint directory that was published by ``save`` (final name and a position file)."""
    return path.is_dir() and path.name.startswith(_PREFIX) and (path / POSITION_FILE).is_file()


def complete_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest (lowest step) first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if is_complete(p) and p.name[len(_PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


class CheckpointManager:
    """Saves and restores the full training state of one run (see the module docstring).

    Args:
        directory: Where checkpoints live, usually ``OUTPUT_DIR/checkpoints``.
        accelerator: The run's Accelerator; the model and optimiser must already be ``prepare``d when saving or
            resuming.
        keep_last: Complete checkpoints to keep; older ones are deleted after each successful save.
        extra_objects: Objects with ``state_dict``/``load_state_dict`` (an EMA, a loss with buffers) saved and
            restored along with the model, in this order.
    """

    def __init__(self, directory: str | os.PathLike, accelerator, *, keep_last: int = 3, extra_objects=()) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.accelerator = accelerator
        self.keep_last = keep_last
        for obj in extra_objects:
            accelerator.register_for_checkpointing(obj)

    def save(self, step: int, epoch: int, batch: int = 0, extra: dict[str, Any] | None = None) -> Path:
        """Write the full state as checkpoint ``step``; every process must call it. Returns the final path.

        ``epoch`` and ``batch`` say where a resume continues (the epoch-end checkpoint is ``(step, epoch + 1)``);
        ``extra`` is any JSON-serialisable dict returned as ``Position.extra`` (e.g. the best accuracy so far).
        """
        acc = self.accelerator
        final = self.directory / f"{_PREFIX}{step:09d}"
        staging = self.directory / f"{_INCOMPLETE}{final.name}"
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(staging))
        acc.wait_for_everyone()
        if acc.is_main_process:
            position = {"step": step, "epoch": epoch, "batch": batch, "extra": extra or {}}
            position |= {"num_processes": acc.num_processes, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (staging / POSITION_FILE).write_text(json.dumps(position, indent=2) + "\n")
            _fsync_tree(staging)
            if final.exists():
                _discard(final)
            os.replace(staging, final)  # the commit point: before it the old state is intact, after it the new one
            _fsync_dir(self.directory)
            _write_atomic(self.directory / LATEST_FILE, final.name + "\n")
            self._rotate()
        acc.wait_for_everyone()
        return final

    def _rotate(self) -> None:
        for old in complete_checkpoints(self.directory)[: -self.keep_last]:
            _discard(old)

    def clean_leftovers(self) -> None:
        """Remove staging and trash directories left by an interrupted save (main process only)."""
        if self.accelerator.is_main_process and self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.name.startswith((_INCOMPLETE, _TRASH)):
                    shutil.rmtree(path, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def latest(self) -> Path | None:
        """Newest complete checkpoint, or None."""
        found = complete_checkpoints(self.directory)
        return found[-1] if found else None

    def resume(self, resume: str | os.PathLike = "auto") -> Position:
        """Restore the state named by ``resume`` and return where to continue (``Position()`` for a fresh start).

        ``auto``: the newest complete checkpoint in this manager's directory, else a fresh start. ``off``: a fresh
        start, refused when the directory already holds checkpoints (they would be mixed with the new run's). A
        path: a checkpoint directory, or a directory of checkpoints (its newest complete one is used).
        """
        self.clean_leftovers()
        mode = str(resume)
        if mode == "off":
            if self.latest() is not None:
                raise ResumeError(
                    f"run.resume=off but {self.directory} already holds checkpoints of an earlier run; "
                    "pass run.resume=auto to continue it, or choose a new --output-dir"
                )
            return Position()
        path = self.latest() if mode == "auto" else _resolve(Path(mode))
        if path is None:
            return Position()
        self.accelerator.load_state(str(path))
        data = json.loads((path / POSITION_FILE).read_text())
        saved_by = data.get("num_processes", self.accelerator.num_processes)
        if saved_by != self.accelerator.num_processes and data["batch"]:
            warnings.warn(
                f"{path} was written by {saved_by} processes and is resumed by {self.accelerator.num_processes}: "
                f"the rest of epoch {data['epoch']} is sharded differently, so some samples of it may be seen twice "
                "or skipped (epoch-end checkpoints have no such issue)",
                stacklevel=2,
            )
        self.accelerator.wait_for_everyone()
        return Position(int(data["step"]), int(data["epoch"]), int(data["batch"]), dict(data.get("extra", {})), path)


def _resolve(path: Path) -> Path:
    if is_complete(path):
        return path
    for folder in (path, path / "checkpoints"):
        found = complete_checkpoints(folder)
        if found:
            return found[-1]
    hint = " (it is an unfinished save; pick an earlier checkpoint)" if path.name.startswith(_INCOMPLETE) else ""
    raise ResumeError(
        f"run.resume={path}: no complete checkpoint there{hint}. Pass a checkpoint directory (step_NNNNNNNNN with a "
        f"{POSITION_FILE}), a checkpoints/ folder or an output directory, or run.resume=auto"
    )


def export_final_model(model, path: str | os.PathLike, accelerator=None) -> Path:
    """Write plain weights + config that ``resmlp.create_model(name, checkpoint=path)`` loads.

    With an ``accelerator`` the model is unwrapped (DDP, FSDP: the full state dict is gathered) and only the main
    process writes; every process must call it then.
    """
    import resmlp

    path = Path(path)
    if accelerator is None:
        return resmlp.save_model(model, path)
    unwrapped = accelerator.unwrap_model(model)
    if not isinstance(getattr(unwrapped, "config", None), resmlp.ResMLPConfig):
        raise TypeError(f"export_final_model needs a resmlp.ResMLP (with .config), got {type(unwrapped).__name__}")
    state = accelerator.get_state_dict(model)  # gathers shards under FSDP; a plain state dict otherwise
    if accelerator.is_main_process:
        plain = resmlp.ResMLP(unwrapped.config)
        plain.load_state_dict(state)
        resmlp.save_model(plain, path)
    accelerator.wait_for_everyone()
    return path


def list_positions(directory: str | os.PathLike) -> Iterable[tuple[Path, dict[str, Any]]]:
    """``(checkpoint, position dict)`` for every complete checkpoint under ``directory``, oldest first."""
    for path in complete_checkpoints(Path(directory)):
        yield path, json.loads((path / POSITION_FILE).read_text())
