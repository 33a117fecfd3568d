"""Progress bar on the main process: step, loss, lr, images/s and ETA (tqdm), silent on the other processes.

Throughput counts images of all processes (``images_per_step`` is the total batch) and is measured between
updates, so it reflects the current speed rather than an average over start-up::

    with ProgressBar(total_steps, accelerator, images_per_step=total_batch, initial=start.step) as bar:
        for step in ...:
            ...
            if step % cfg.run.log_every_steps == 0:
                bar.update(step + 1, loss=mean_loss, lr=lr)
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm


class ProgressBar:
    """tqdm over optimiser steps whose postfix shows loss, lr and images/s; ETA comes from tqdm itself."""

    def __init__(self, total_steps: int, accelerator=None, *, images_per_step: int, initial: int = 0) -> None:
        self.enabled = accelerator is None or accelerator.is_local_main_process
        self.images_per_step = images_per_step
        self.bar = tqdm(total=total_steps, initial=initial, disable=not self.enabled, unit="step", dynamic_ncols=True)
        self._last_step = initial
        self._last_time = time.perf_counter()
        self.images_per_second = 0.0

    def update(self, step: int, *, loss: float, lr: float, **more: float) -> None:
        """Move the bar to ``step`` (steps done) and show the latest numbers."""
        now = time.perf_counter()
        done = step - self._last_step
        if done > 0 and now > self._last_time:
            self.images_per_second = done * self.images_per_step / (now - self._last_time)
        self._last_step, self._last_time = step, now
        if not self.enabled:
            return
        postfix = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", "img/s": f"{self.images_per_second:.0f}"}
        postfix |= {k: f"{v:.4g}" for k, v in more.items()}
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(done)

    def write(self, message: str) -> None:
        """Print a line above the bar (main process only)."""
        if self.enabled:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also on an error or an interrupt, so the error line is the last thing printed
