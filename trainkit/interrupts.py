"""Ctrl-C and SIGTERM stop a run cleanly: finish the current step, save a complete checkpoint, say how to resume.

The first SIGINT or SIGTERM only sets a flag; the loop checks it after every optimiser step (all processes agree
through one tiny all-reduce, so they stop at the same step), saves, and raises ``Interrupted``: one line naming the
checkpoint and the command that continues, exit status 130 (SIGINT) or 143 (SIGTERM). A second signal more than
``grace_s`` seconds after the first stops the process at once (the operating system's default action), which cannot
damage the last complete checkpoint: a checkpoint only becomes visible by one atomic rename once it is complete.
Signals within ``grace_s`` of the first count as the same request: a Ctrl-C in a terminal reaches every process of
the group, and ``accelerate launch`` / ``torchrun`` forward it to their workers once more. (Those launchers kill
workers 30 s after forwarding a signal; a kill then still leaves the previous checkpoint intact.)

DataLoader worker processes ignore both signals (``ignore_in_workers`` as ``worker_init_fn``), so a Ctrl-C or a
SIGTERM sent to every process (a terminal, a scheduler) does not kill them under the loop's feet; they stop with
their loader. A worker still alive when the main process exits is killed then (SIGKILL): multiprocessing's own exit
handler would send it a SIGTERM it ignores and wait for it forever::

    with GracefulStop(accelerator) as stop:
        for ...:
            ...  # one optimiser step
            if stop.requested():
                stop.save_and_exit(ckpt, step, epoch, batch=i + 1, resume=cfg.run.resume)
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, NoReturn

import torch

from resmlp.cli import UserError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(UserError):
    """The run stopped on SIGINT/SIGTERM after saving; printed once (by the main process) as one line."""

    main_process_only = True


def _kill_leftover_workers() -> None:
    """At exit, SIGKILL the daemonic children (DataLoader workers) still alive; multiprocessing would SIGTERM them."""
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()


atexit.register(_kill_leftover_workers)  # after multiprocessing's handler is registered, so it runs before it


def ignore_in_workers(worker_id: int = 0) -> None:
    """``worker_init_fn`` for DataLoaders: the worker ignores SIGINT and SIGTERM and leaves them to the loop."""
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class GracefulStop:
    """Context manager that turns the first SIGINT/SIGTERM into a request the training loop honours.

    Args:
        accelerator: The run's Accelerator (to share the request between processes), or None for one process.
        grace_s: Repeats of the signal within this many seconds of the first are the same request.
    """

    def __init__(self, accelerator=None, *, grace_s: float = 1.0) -> None:
        self.accelerator = accelerator
        self.grace_s = grace_s
        self.signum: int | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}
        self._installed = False

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self._first_at = signum, now
            if self._is_main:
                print(
                    f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint; press Ctrl-C "
                    "again to stop at once (the last complete checkpoint stays intact)",
                    file=sys.stderr,
                    flush=True,
                )
            return
        if now - self._first_at < self.grace_s:
            return  # the same Ctrl-C, forwarded by a launcher
        if self._is_main:
            print(f"{signal.Signals(signum).name} again: stopping at once, without saving", file=sys.stderr, flush=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    @property
    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def requested(self) -> bool:
        """Whether any process received a stop signal (a collective: every process must call it each time)."""
        local = self.signum is not None
        acc = self.accelerator
        if acc is None or acc.num_processes == 1:
            return local
        flag = torch.tensor([1.0 if local else 0.0], device=acc.device)
        return bool(acc.reduce(flag, reduction="sum").item() > 0)

    def save_and_exit(
        self, ckpt, step: int, epoch: int, *, batch: int, resume: str = "auto", extra: dict | None = None
    ) -> NoReturn:
        """Save checkpoint ``step`` (unless it was just saved) and raise ``Interrupted`` with the resume command."""
        path = ckpt.save(step, epoch, batch=batch, extra=extra) if ckpt.last_saved_step != step else ckpt.latest()
        name = signal.Signals(self.signum).name if self.signum is not None else "a signal on another process"
        again = "the same command again" + ("" if str(resume) == "auto" else " with run.resume=auto")
        raise Interrupted(
            f"stopped by {name} after step {step} (epoch {epoch}, batch {batch}); the checkpoint {path} is complete. "
            f"To continue, run {again}",
            status=_STATUS.get(self.signum, 130),
        )
