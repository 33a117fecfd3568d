"""Checks a run makes before its first step, so that what would fail later fails now, in one line.

A training run that crashes at its first checkpoint (a read-only or full disk), or an hour in on the first
unreadable image, wastes the time before it. The checks here are cheap: the output folders are created and a
probe file is written and removed in each, the free space is compared with the size of one checkpoint estimated
from the model, the optimiser and the extra state, and the first sample of each split is decoded::

    check_output_dir(output_dir)                                       # before the Accelerator (TensorBoard) starts
    need = checkpoint_bytes(model, cfg.optim.name, extras=[ema])
    check_free_space(output_dir / "checkpoints", need)
    probe_dataset(train_set, "the training split", skip_hint=...)    # decodes one image

Every failure raises ``PreflightError`` naming the folder or file and the fix.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from resmlp.cli import UserError

# Tensors per parameter an optimiser keeps (Adam/LAMB: two moments; SGD: the momentum buffer).
OPTIMIZER_SLOTS = {"adamw": 2, "lamb": 2, "sgd": 1}
_MARGIN = 1.1  # headroom over the estimate: file headers, RNG states, the position file


class PreflightError(UserError):
    """Something the run needs is missing or unusable; found before the first step."""


def check_output_dir(output_dir: str | os.PathLike, subfolders: Iterable[str] = ("checkpoints",)) -> Path:
    """Create ``output_dir`` (and ``subfolders``) and check a file can be written, synced and removed in each."""
    output_dir = Path(output_dir)
    for folder in (output_dir, *(output_dir / name for name in subfolders)):
        probe = folder / f".write-test-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as handle:
                handle.write(b"ok")
                handle.flush()
                os.fsync(handle.fileno())
            probe.unlink()
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise PreflightError(
                f"cannot write to {folder} ({reason}); the run would fail at its first save. Choose another "
                "--output-dir, or make the folder writable"
            ) from None
    return output_dir


def state_bytes(objects: Iterable[object]) -> int:
    """Bytes of the tensors in the ``state_dict`` of each object (modules, an EMA, a loss with buffers)."""
    total = 0
    for obj in objects:
        if obj is None:
            continue
        for value in obj.state_dict().values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


def checkpoint_bytes(model: torch.nn.Module, optimizer_name: str, extras: Iterable[object] = ()) -> int:
    """Estimated size of one checkpoint: the model, the optimiser's per-parameter state, and the extras."""
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)  # optimiser state is fp32
    return state_bytes([model]) + OPTIMIZER_SLOTS.get(optimizer_name, 2) * trainable + state_bytes(extras)


def check_free_space(directory: str | os.PathLike, needed: int, what: str = "one checkpoint") -> None:
    """Refuse when the file system of ``directory`` has less free space than ``needed`` bytes (plus a margin)."""
    directory = Path(directory)
    free = shutil.disk_usage(directory).free
    if free < needed * _MARGIN:
        raise PreflightError(
            f"{directory} has {_human(free)} free but {what} needs about {_human(int(needed * _MARGIN))}; free some "
            "space, or choose another --output-dir"
        )


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def probe_dataset(dataset, what: str) -> None:
    """Decode the first sample of ``dataset`` so a broken folder or format fails now (errors name the file).

    The random generators are left as they were (a random transform draws from them), so probing changes nothing
    about the run.
    """
    if len(dataset) == 0:
        raise PreflightError(f"{what} is empty; point the data at a folder with images")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            dataset[0]
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
