"""Stop a run on a non-finite loss, with a message that says where and what to try, keeping the last checkpoint.

The check runs before ``backward``, so the weights and optimiser state are never touched by the bad step. Under
several processes the verdict is shared (one tiny all-reduce), so every process stops together instead of the
healthy ones hanging in the next collective. The loop must let ``NonFiniteLossError`` propagate and must not save
on the way out: the last checkpoint on disk is the last good state::

    loss = criterion(model(images), targets)
    check_finite_loss(loss, step, accelerator)   # raises NonFiniteLossError on NaN/inf on any process
    accelerator.backward(loss)
"""

from __future__ import annotations

import torch

from resmlp.cli import UserError


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite; the run stops and the last checkpoint stays the latest.

    Every process raises it at the same step, so it is printed once (by the main process)."""

    main_process_only = True


def check_finite_loss(loss: torch.Tensor | float, step: int, accelerator=None, *, precision: str = "") -> None:
    """Raise ``NonFiniteLossError`` naming ``step`` when ``loss`` is NaN/inf on this or any other process."""
    value = loss.detach().float() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
    bad = (~torch.isfinite(value)).any().float().reshape(1)
    if accelerator is not None and accelerator.num_processes > 1:
        bad = accelerator.reduce(bad.to(accelerator.device), reduction="sum")
    if bad.item() == 0:
        return
    local = value.mean().item() if value.numel() else float("nan")
    precision_hint = " set run.precision=no (fp32, as in the paper)," if precision in ("fp16", "bf16") else ""
    raise NonFiniteLossError(
        f"non-finite training loss at step {step} (this process: {local}). The run stops without saving; the last "
        f"checkpoint is the last good state and run.resume=auto continues from it. Likely fixes: lower optim.lr "
        f"(or raise schedule.warmup_epochs),{precision_hint} set optim.clip_grad (e.g. 1.0), or check the inputs "
        "for NaNs."
    )
