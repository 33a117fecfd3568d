"""Recipe sections shared by every training entry point: optimiser, schedule and run settings.

A task package composes these with its own sections into one frozen recipe tree, which ``trainkit.recipe`` fills
from YAML and the command line::

    @dataclass(frozen=True)
    class VisionRecipe:
        model: ModelConfig = ModelConfig()
        optim: OptimConfig = OptimConfig()
        schedule: ScheduleConfig = ScheduleConfig()
        run: RunConfig = RunConfig()

The defaults are the paper's ImageNet recipe where one exists (Touvron et al., arXiv 2105.03404, §3.1, via the
DeiT code base); hardware settings (processes, machines) never live here but in ``recipes/accelerate/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPTIMIZERS = ("lamb", "adamw", "sgd")
PRECISIONS = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and the per-step regularisers that act on its update.

    Attributes:
        name: ``lamb`` (the paper's), ``adamw`` or ``sgd``; built by timm's ``create_optimizer_v2``.
        lr: Learning rate for a total batch of ``lr_reference_batch`` images; the run uses
            ``lr * total_batch / lr_reference_batch`` (DeiT's linear scaling rule, reference batch 512).
        lr_reference_batch: Batch size ``lr`` is quoted for; None uses ``lr`` unscaled whatever the batch.
        weight_decay: Decoupled weight decay on weight matrices only; biases and every 1-D parameter (Affine
            alpha/beta, LayerScale gamma) get none.
        betas: Adam/LAMB moment coefficients.
        momentum: SGD momentum (ignored by the other optimisers).
        eps: Adam/LAMB denominator epsilon (DeiT's ``--opt-eps`` default).
        clip_grad: Global gradient-norm clip; None disables it (the DeiT default).
        ema_decay: Decay of an exponential moving average of the weights per optimiser step; None disables it.
    """

    name: Literal["lamb", "adamw", "sgd"] = "lamb"
    lr: float = 5e-3
    lr_reference_batch: int | None = 512
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    eps: float = 1e-8
    clip_grad: float | None = None
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"name must be one of {OPTIMIZERS}, got {self.name!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_reference_batch is not None and self.lr_reference_batch <= 0:
            raise ValueError(f"lr_reference_batch must be > 0 or null, got {self.lr_reference_batch}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"clip_grad must be > 0 or null (no clipping), got {self.clip_grad}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1) or be null (no EMA), got {self.ema_decay}")

    def scaled_lr(self, total_batch: int) -> float:
        """Peak learning rate for ``total_batch`` images per optimiser step (all processes, all accumulation)."""
        if total_batch <= 0:
            raise ValueError(f"total_batch must be > 0, got {total_batch}")
        if self.lr_reference_batch is None:
            return self.lr
        return self.lr * total_batch / self.lr_reference_batch


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then cosine decay, evaluated at every optimiser step.

    Attributes:
        epochs: Length of the run in passes over the training set.
        warmup_epochs: Linear warmup from ``warmup_lr`` to the peak lr; fractions of an epoch are allowed.
        warmup_lr: Learning rate at step 0.
        min_lr: Learning rate reached at the last step.
    """

    epochs: int = 400
    warmup_epochs: float = 5.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must lie in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if self.warmup_lr < 0 or self.min_lr < 0:
            raise ValueError(f"warmup_lr and min_lr must be >= 0, got {self.warmup_lr} and {self.min_lr}")


@dataclass(frozen=True)
class RunConfig:
    """How one run executes: seed, batch, precision, checkpoints, logging. Science-neutral.

    Attributes:
        seed: Seed of every random generator (Python, NumPy, torch) before the model is built.
        batch_size: Images per process per forward pass; the total batch is
            ``batch_size * num_processes * grad_accum_steps``.
        grad_accum_steps: Forward/backward passes per optimiser step.
        precision: ``no`` (fp32, the paper's choice), ``fp16`` (CUDA only) or ``bf16``.
        num_workers: DataLoader worker processes per training process.
        max_steps: Stop after this many optimiser steps (demos and tests); None runs the full schedule. The
            schedule itself still spans ``schedule.epochs``, so a capped run is the start of the full one.
        save_every_steps: Save a checkpoint every this many optimiser steps; 0 saves only at epoch ends.
        keep_last: Complete checkpoints kept on disk; older ones are deleted after each save.
        resume: ``auto`` (newest complete checkpoint of the output directory, or a fresh start), ``off`` (fresh
            start; refused if the output directory already holds checkpoints), or a path to a checkpoint.
        eval_every_epochs: Evaluate every this many epochs (the last epoch is always evaluated).
        log_every_steps: Update the progress bar and TensorBoard every this many optimiser steps.
        tensorboard: Write TensorBoard event files under ``OUTPUT_DIR/tensorboard``.
        compile: ``torch.compile`` the model (in place, after ``accelerator.prepare``, so a DDP wrapper is compiled
            too); the first steps pay the compilation. Off by default; checkpoints do not depend on it.
    """

    seed: int = 0
    batch_size: int = 64
    grad_accum_steps: int = 1
    precision: Literal["no", "fp16", "bf16"] = "no"
    num_workers: int = 4
    max_steps: int | None = None
    save_every_steps: int = 1000
    keep_last: int = 3
    resume: str = "auto"
    eval_every_epochs: int = 1
    log_every_steps: int = 20
    tensorboard: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "grad_accum_steps": self.grad_accum_steps}
        positive |= {"keep_last": self.keep_last, "eval_every_epochs": self.eval_every_epochs}
        positive["log_every_steps"] = self.log_every_steps
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.num_workers < 0 or self.save_every_steps < 0:
            raise ValueError("num_workers and save_every_steps must be >= 0 (save_every_steps 0: epoch ends only)")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0 or null (full schedule), got {self.max_steps}")
        if not self.resume:
            raise ValueError("resume must be 'auto', 'off' or a checkpoint path, got an empty string")
