"""Crash-safe training checkpoints that carry no code: full state every N steps and at epoch ends, resume auto/path/off.

A checkpoint is a directory ``CHECKPOINTS/step_000001200/`` of files that cannot execute anything when read
(``trainkit.state_files``): ``model.safetensors``, ``optimizer.safetensors``, one ``<name>.safetensors`` per extra
object (``ema``, ``teacher``, ``dino_loss``), ``rng_<rank>.safetensors`` per process, and ``position.json``
(format, step, epoch, batch within the epoch, the GradScaler and accelerate's step counter, JSON extras, and the
size of every file). The lr/wd schedules are pure functions of the step and the samplers of (seed, epoch), so the
position is their whole state. ``accelerator.save_state``/``load_state`` are not used: ``load_state`` unpickles
``custom_checkpoint_*.pkl`` and ``random_states_*.pkl`` with ``weights_only=False``, which runs any code a planted
file carries.

Resuming reads and checks every file before anything is applied; a missing, truncated, foreign or unexpected file
stops the resume with one error naming it (``ResumeError``), and so does a missing RNG state. Folders written by
earlier versions (accelerate's pickles) are refused, never unpickled, with the way to continue from their weights.

Atomicity: everything is written into ``.incomplete-step_.../``, fsynced, and only then renamed to its final name
(one ``os.replace``, atomic on POSIX); the ``latest`` pointer is rewritten the same way afterwards, so it only ever
names a complete folder. A directory name is never reused (a second save at the same step gets ``step_N_1``), and a
folder is deleted (renamed to ``.trash-...`` first) only after ``latest`` names a newer one. A kill -9 at any
moment therefore leaves the previous checkpoints untouched or the new one complete. On resume, hidden leftovers
are removed and the newest *complete* checkpoint wins.

Only the main process manages files; every process calls ``save``/``resume`` (they wait for each other)::

    ckpt = CheckpointManager(output_dir / "checkpoints", accelerator, model=model, optimizer=optimizer,
                             extras={"ema": ema}, keep_last=cfg.run.keep_last)
    start = ckpt.resume(cfg.run.resume)          # after accelerator.prepare(...); Position(step, epoch, batch)
    ...
    ckpt.save(step, epoch, batch=i + 1)          # mid-epoch: resume continues after batch i
    ckpt.save(step, epoch + 1)                   # at each epoch end: resume starts the next epoch
    export_final_model(model, output_dir / "model.pth", accelerator)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resmlp.cli import UserError

from . import state_files
from .durable import fsync_dir, fsync_tree, write_text_atomic
from .state_files import StateFileError

FORMAT = 2
POSITION_FILE = "position.json"
LATEST_FILE = "latest"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
_PREFIX = "step_"
_NAME = re.compile(r"^step_(\d{9})(?:_(\d+))?$")
_INCOMPLETE = ".incomplete-"
_TRASH = ".trash-"
_RESERVED = ("model", "optimizer", "position")


class ResumeError(UserError):
    """A resume request that cannot be honoured; the message names the folder or file and how to continue."""


@dataclass(frozen=True)
class Position:
    """Where training continues: ``step`` optimiser steps are done; the next batch is ``batch`` of ``epoch``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _discard(path: Path) -> None:
    """Rename to a hidden trash name first (atomic), then delete: a kill mid-delete leaves no half checkpoint."""
    trash = path.with_name(f"{_TRASH}{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _order(path: Path) -> tuple[int, int]:
    match = _NAME.match(path.name)
    assert match is not None
    return int(match.group(1)), int(match.group(2) or 0)


def is_complete(path: Path) -> bool:
    """A checkpoint directory that was published by ``save`` (final name and a position file)."""
    return path.is_dir() and _NAME.match(path.name) is not None and (path / POSITION_FILE).is_file()


def complete_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest (lowest step) first."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if is_complete(p)), key=_order)


def read_position(path: Path) -> dict[str, Any]:
    """The ``position.json`` of checkpoint ``path``, checked; old-format folders are refused (never unpickled)."""
    position_file = path / POSITION_FILE
    try:
        data = json.loads(position_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResumeError(f"cannot read {position_file} ({type(err).__name__}); {_older_hint(path)}") from None
    if not isinstance(data, dict):
        raise ResumeError(f"cannot read {position_file}: not a position record; {_older_hint(path)}")
    if data.get("format") != FORMAT:
        raise ResumeError(_legacy_message(path, data))
    for key in ("step", "epoch", "batch", "num_processes", "files"):
        if key not in data:
            raise ResumeError(f"cannot read {position_file}: it lacks {key!r}; {_older_hint(path)}")
    return data


def _older_hint(path: Path) -> str:
    return (
        f"the checkpoint {path.name} is damaged. Pass run.resume=<an earlier checkpoint folder> to continue from "
        "an earlier one"
    )


def _legacy_message(path: Path, data: Any) -> str:
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".pkl", ".bin", ".pt", ".pth"))
    shown = ", ".join(pickles[:4]) or "its files"
    weights = path / MODEL_FILE
    start = f"{weights}" if weights.is_file() else "OUTPUT_DIR/model.pth"
    written = "an earlier version of this library" if isinstance(data, dict) and "step" in data else "another tool"
    return (
        f"refusing to resume from {path}: it was written by {written} (accelerate's save_state), whose pickles "
        f"({shown}) can run code when loaded, so it is never unpickled. To continue from its weights, start a new "
        f"run in a new --output-dir from {start} (vision: model.checkpoint={start}); the optimiser state and "
        "schedule position of that folder cannot be restored safely"
    )


def _unwrapped(accelerator, model):
    try:
        return accelerator.unwrap_model(model, keep_torch_compile=False)
    except TypeError:  # older accelerate without the keyword
        return accelerator.unwrap_model(model)


def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


class CheckpointManager:
    """Saves and restores the full training state of one run (see the module docstring).

    Args:
        directory: Where checkpoints live, usually ``OUTPUT_DIR/checkpoints``.
        accelerator: The run's Accelerator; ``model`` and ``optimizer`` must already be ``prepare``d.
        model: The trained (prepared) model.
        optimizer: Its (prepared) optimiser.
        extras: Named objects with ``state_dict``/``load_state_dict`` whose state is a flat dict of tensors (an EMA,
            the DINO teacher, a loss with buffers); saved as ``<name>.safetensors``.
        keep_last: Complete checkpoints to keep; older ones are deleted after each successful save.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        accelerator,
        *,
        model,
        optimizer,
        extras: Mapping[str, Any] | None = None,
        keep_last: int = 3,
    ) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        extras = dict(extras or {})
        for name in extras:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in _RESERVED or name.startswith("rng"):
                raise ValueError(f"extra state name {name!r} must be a lower-case identifier other than {_RESERVED}")
        self.directory = Path(directory)
        self.accelerator = accelerator
        self.model = model
        self.optimizer = optimizer
        self.extras = extras
        self.keep_last = keep_last
        self.last_saved_step: int | None = None

    # ------------------------------------------------------------------ save
    def save(self, step: int, epoch: int, batch: int = 0, extra: dict[str, Any] | None = None) -> Path:
        """Write the full state as checkpoint ``step``; every process must call it. Returns the final path.

        ``epoch`` and ``batch`` say where a resume continues (the epoch-end checkpoint is ``(step, epoch + 1)``);
        ``extra`` is any JSON-serialisable dict returned as ``Position.extra`` (e.g. the best accuracy so far).
        """
        acc = self.accelerator
        final = self._new_name(step)
        staging = self.directory / f"{_INCOMPLETE}{final.name}"
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        acc.wait_for_everyone()
        model_state, optimizer_state = self._gather_state()
        if acc.is_main_process:
            state_files.write_tensors(staging / MODEL_FILE, model_state)
            state_files.write_optimizer(staging / OPTIMIZER_FILE, optimizer_state)
            for name, obj in self.extras.items():
                state_files.write_tensors(staging / f"{name}.safetensors", obj.state_dict())
        state_files.write_rng(staging / f"rng_{acc.process_index}.safetensors")
        acc.wait_for_everyone()
        if acc.is_main_process:
            position = {"format": FORMAT, "step": step, "epoch": epoch, "batch": batch, "extra": extra or {}}
            position["num_processes"] = acc.num_processes
            position["accelerator_step"] = int(getattr(acc, "step", 0))
            scaler = getattr(acc, "scaler", None)
            position["scaler"] = scaler.state_dict() if scaler is not None else None
            position["files"] = {p.name: p.stat().st_size for p in sorted(staging.iterdir())}
            position["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            (staging / POSITION_FILE).write_text(json.dumps(position, indent=2) + "\n")
            fsync_tree(staging)
            os.replace(staging, final)  # the commit point: before it the old state is intact, after it the new one
            fsync_dir(self.directory)
            write_text_atomic(self.directory / LATEST_FILE, final.name + "\n")
            self._rotate()
        acc.wait_for_everyone()
        self.last_saved_step = step
        return final

    def after_step(
        self, stop, step: int, epoch: int, *, batch: int, epoch_done: bool, total: int, every: int, resume, extra
    ) -> None:
        """A training loop's duty after each optimiser step: the periodic checkpoint every ``every`` steps (0: none;
        skipped at the last step and at an epoch's last batch, where ``after_epoch`` saves), then, when ``stop`` (a
        ``GracefulStop``) was requested on any process, save and raise ``Interrupted``. ``extra`` is a callable
        returning ``save``'s ``extra``; ``batch`` is the number of batches of ``epoch`` done. Every process calls it.
        """
        if every and step % every == 0 and step < total and not epoch_done:
            self.save(step, epoch, batch=batch, extra=extra())
        if stop.requested():
            stop.save_and_exit(self, step, epoch, batch=batch, resume=resume, extra=extra())

    def after_epoch(self, stop, step: int, next_epoch: int, *, next_batch: int, resume, extra) -> None:
        """The epoch-end checkpoint (where a resume continues: ``next_epoch``, batch ``next_batch``), then the stop
        check as in ``after_step``."""
        self.save(step, next_epoch, batch=next_batch, extra=extra())
        if stop.requested():
            stop.save_and_exit(self, step, next_epoch, batch=next_batch, resume=resume)

    def _new_name(self, step: int) -> Path:
        """``step_N``, or ``step_N_k`` when a checkpoint of that step exists (names are never reused)."""
        final = self.directory / f"{_PREFIX}{step:09d}"
        k = 0
        while (final if k == 0 else final.with_name(f"{final.name}_{k}")).exists():
            k += 1
        return final if k == 0 else final.with_name(f"{final.name}_{k}")

    def _gather_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        acc = self.accelerator
        inner = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's AcceleratedOptimizer
        if _sharded(acc):  # FSDP: full state dicts gathered on the CPU (a collective: every process calls it)
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
                get_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_model_state_dict(self.model, options=options), get_optimizer_state_dict(
                self.model, inner, options=options
            )
        return _unwrapped(acc, self.model).state_dict(), inner.state_dict()

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

    # ------------------------------------------------------------------ resume
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
        path = self.latest() if mode == "auto" else resolve_checkpoint(Path(mode))
        if path is None:
            return Position()
        data, loaded = self._read_all(path)
        self._apply(data, loaded)
        saved_by = data["num_processes"]
        if saved_by != self.accelerator.num_processes and data["batch"]:
            warnings.warn(
                f"{path} was written by {saved_by} processes and is resumed by {self.accelerator.num_processes}: "
                f"the rest of epoch {data['epoch']} is sharded differently, so some samples of it may be seen twice "
                "or skipped (epoch-end checkpoints have no such issue)",
                stacklevel=2,
            )
        self.accelerator.wait_for_everyone()
        return Position(int(data["step"]), int(data["epoch"]), int(data["batch"]), dict(data.get("extra", {})), path)

    def _read_all(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read and check every file of ``path`` (nothing is applied); all processes agree on failure."""
        acc = self.accelerator
        error: UserError | None = None
        data: dict[str, Any] = {}
        loaded: dict[str, Any] = {}
        try:
            data = read_position(path)
            expected = self._expected_files(data["num_processes"])
            _check_files(path, data["files"], expected)
            loaded["model"] = state_files.read_tensors(path / MODEL_FILE)
            loaded["optimizer"] = state_files.read_optimizer(path / OPTIMIZER_FILE)
            for name in self.extras:
                loaded[name] = state_files.read_tensors(path / f"{name}.safetensors")
            rng_files = [path / f"rng_{rank}.safetensors" for rank in range(data["num_processes"])]
            if acc.is_main_process:  # the main process checks every process's RNG file, so it can name a bad one
                for rng_file in rng_files:
                    state_files.read_rng(rng_file)
            mine = acc.process_index if acc.process_index < len(rng_files) else None
            loaded["rng"] = state_files.read_rng(rng_files[mine]) if mine is not None else None
        except (UserError, StateFileError) as err:
            error = err
        failed = torch.tensor([1.0 if error is not None else 0.0], device=acc.device)
        if acc.num_processes > 1:
            failed = acc.reduce(failed, reduction="sum")
        if failed.item():
            if error is None:
                error = ResumeError(f"resuming from {path} failed on another process; see its error above")
            if not isinstance(error, ResumeError):
                error = ResumeError(
                    f"cannot resume from {path}: {error}. Nothing was loaded; pass run.resume=<an earlier "
                    "checkpoint folder> to continue from an earlier checkpoint"
                )
            raise error
        return data, loaded

    def _expected_files(self, num_processes: int) -> set[str]:
        names = {MODEL_FILE, OPTIMIZER_FILE, *(f"{n}.safetensors" for n in self.extras)}
        return names | {f"rng_{rank}.safetensors" for rank in range(num_processes)}

    def _apply(self, data: dict[str, Any], loaded: dict[str, Any]) -> None:
        acc = self.accelerator
        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        try:
            if _sharded(acc):
                from torch.distributed.checkpoint.state_dict import (
                    StateDictOptions,
                    set_model_state_dict,
                    set_optimizer_state_dict,
                )

                options = StateDictOptions(full_state_dict=True)
                set_model_state_dict(self.model, loaded["model"], options=options)
                set_optimizer_state_dict(self.model, inner, loaded["optimizer"], options=options)
            else:
                _unwrapped(acc, self.model).load_state_dict(loaded["model"])
                self.optimizer.load_state_dict(loaded["optimizer"])
            for name, obj in self.extras.items():
                obj.load_state_dict(loaded[name])
        except (RuntimeError, ValueError, KeyError) as err:
            reason = " ".join(str(err).split())[:300]
            raise ResumeError(
                f"the checkpoint does not fit this run ({reason}); it was written with another model or optimiser. "
                "Resume with the recipe that wrote it, or start a new --output-dir"
            ) from None
        scaler = getattr(acc, "scaler", None)
        if scaler is not None and data.get("scaler"):
            scaler.load_state_dict(data["scaler"])
        if hasattr(acc, "step"):
            acc.step = int(data.get("accelerator_step", 0))
        if loaded["rng"] is not None:
            state_files.set_rng(loaded["rng"])
        else:  # more processes than wrote the checkpoint: no stream to continue, a fresh but distinct one
            warnings.warn(
                f"process {acc.process_index} has no saved RNG state (the checkpoint was written by "
                f"{data['num_processes']} processes); its random streams restart from seed {data['step']} + rank, so "
                "the run is not an exact continuation",
                stacklevel=3,
            )
            torch.manual_seed(int(data["step"]) * 1000 + acc.process_index)


def _check_files(path: Path, recorded: Any, expected: set[str]) -> None:
    """Every expected file present with its recorded size; nothing else in the folder (a planted file is refused)."""
    if not isinstance(recorded, dict):
        raise ResumeError(f"cannot read {path / POSITION_FILE}: its file list is damaged; {_older_hint(path)}")
    present = {p.name for p in path.iterdir()} - {POSITION_FILE}
    unexpected = sorted(present - expected)
    if unexpected:
        raise ResumeError(
            f"refusing to resume from {path}: {path / unexpected[0]} was not written by this run's checkpointing "
            f"(expected only {', '.join(sorted(expected))} and {POSITION_FILE}); nothing in it is loaded. Remove the "
            "file if you put it there, or pass run.resume=<an earlier checkpoint folder>"
        )
    for name in sorted(expected):
        file = path / name
        if not file.is_file():
            hint = " (random-generator state of one process)" if name.startswith("rng_") else ""
            raise ResumeError(
                f"cannot resume from {path}: {file}{hint} is missing, so the run could not continue exactly; pass "
                "run.resume=<an earlier checkpoint folder>, or start a new --output-dir"
            )
        size = file.stat().st_size
        if recorded.get(name) != size:
            raise ResumeError(
                f"cannot resume from {path}: {file} has {size} bytes but was saved with {recorded.get(name)} "
                "(truncated or replaced); pass run.resume=<an earlier checkpoint folder>"
            )


def resolve_checkpoint(path: Path) -> Path:
    """The checkpoint folder a ``run.resume`` path names: itself, or the newest complete one inside it."""
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
    unwrapped = _unwrapped(accelerator, model)
    if not isinstance(getattr(unwrapped, "config", None), resmlp.ResMLPConfig):
        raise TypeError(f"export_final_model needs a resmlp.ResMLP (with .config), got {type(unwrapped).__name__}")
    state = accelerator.get_state_dict(model)  # gathers shards under FSDP; a plain state dict otherwise
    if accelerator.is_main_process:
        plain = resmlp.ResMLP(unwrapped.config)
        plain.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state.items()})
        resmlp.save_model(plain, path)
    accelerator.wait_for_everyone()
    return path


def list_positions(directory: str | os.PathLike) -> Iterable[tuple[Path, dict[str, Any]]]:
    """``(checkpoint, position dict)`` for every complete checkpoint under ``directory``, oldest first."""
    for path in complete_checkpoints(Path(directory)):
        yield path, json.loads((path / POSITION_FILE).read_text())
