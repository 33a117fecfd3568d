"""A complete tiny training run built from trainkit pieces: the reference loop for the tests (and for readers).

resmlp_tiny on 48 random 16x16 images, AdamW, warmup + cosine, checkpoints every few steps and at epoch ends,
metrics.jsonl, TensorBoard, curves PNG and the final model export. Randomness comes from the global torch RNG
(input noise, drop path), so a resumed run only matches an uninterrupted one if the RNG states are restored.
The ``fault`` section injects failures for the tests: a kill -9 after a step, a kill -9 inside a checkpoint save
(after the files are written, before the commit), or a NaN loss.

    python tests/scripts/tiny_train.py --output-dir /tmp/run schedule.epochs=2
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml tests/scripts/tiny_train.py --output-dir ...
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed

import resmlp
from trainkit.accel import build_accelerator, start_tracking
from trainkit.checkpoints import CheckpointManager, export_final_model
from trainkit.curves import plot_curves
from trainkit.guards import check_finite_loss
from trainkit.metrics import MetricsLogger
from trainkit.optim import build_ema, build_optimizer
from trainkit.progress import ProgressBar
from trainkit.recipe import parse_command_line, save_resolved_config
from trainkit.sampling import EpochShuffle
from trainkit.schedules import schedule_lr, set_lr, steps_per_epoch
from trainkit.sections import OptimConfig, RunConfig, ScheduleConfig


@dataclass(frozen=True)
class FaultConfig:
    """Failures to inject (tests only); steps count optimiser steps done."""

    kill_after_step: int | None = None
    kill_during_save_at: int | None = None
    nan_at_step: int | None = None


@dataclass(frozen=True)
class TinyRecipe:
    num_samples: int = 48
    optim: OptimConfig = OptimConfig(name="adamw", lr=3e-3, lr_reference_batch=None, weight_decay=0.05, ema_decay=0.9)
    schedule: ScheduleConfig = ScheduleConfig(epochs=3, warmup_epochs=1.0, warmup_lr=1e-4, min_lr=1e-4)
    run: RunConfig = RunConfig(batch_size=8, num_workers=0, save_every_steps=4, keep_last=2, log_every_steps=2)
    fault: FaultConfig = FaultConfig()


def _kill_inside_next_save() -> None:
    """SIGKILL this process at the checkpoint's commit (rename of the staging directory): files written, not live."""
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(str(src)).startswith(".incomplete-"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    os.replace = replace


def train(cfg: TinyRecipe, output_dir) -> None:
    accelerator = build_accelerator(cfg.run, output_dir)
    set_seed(cfg.run.seed)
    if accelerator.is_main_process:
        save_resolved_config(cfg, output_dir)
    start_tracking(accelerator, cfg, run_name="tiny")

    # ============ model, data, optimiser ============
    model = resmlp.create_model("resmlp_tiny", drop_path_rate=0.1)
    ema = build_ema(model, cfg.optim.ema_decay)
    data = torch.Generator().manual_seed(1234)
    images = torch.randn(cfg.num_samples, 3, 16, 16, generator=data)
    labels = torch.randint(0, 10, (cfg.num_samples,), generator=data)
    sampler = EpochShuffle(cfg.num_samples, cfg.run.seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=cfg.run.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator(),  # keeps iterator creation from drawing on the global RNG
    )
    total_batch = cfg.run.batch_size * accelerator.num_processes * cfg.run.grad_accum_steps
    optimizer = build_optimizer(model, cfg.optim, total_batch)
    peak_lr = cfg.optim.scaled_lr(total_batch)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    # ============ resume ============
    ckpt = CheckpointManager(
        output_dir / "checkpoints",
        accelerator,
        model=model,
        optimizer=optimizer,
        extras={"ema": ema},
        keep_last=cfg.run.keep_last,
    )
    start = ckpt.resume(cfg.run.resume)
    log = MetricsLogger(output_dir, accelerator, resume_step=start.step)
    per_epoch = steps_per_epoch(len(loader), cfg.run.grad_accum_steps)
    total = cfg.schedule.epochs * per_epoch
    if cfg.run.max_steps is not None:
        total = min(total, cfg.run.max_steps)
    bar = ProgressBar(total, accelerator, images_per_step=total_batch, initial=start.step)

    # ============ training ============
    step = start.step
    for epoch in range(start.epoch, cfg.schedule.epochs):
        if step >= total:
            break
        stopped_early = False
        # On the prepared loader, not the sampler: accelerate's loader re-sets its sampler's epoch from its own
        # counter at every iter(), and that counter restarts at 0 in a resumed process.
        loader.set_epoch(epoch)
        first = start.batch if epoch == start.epoch else 0
        batches = accelerator.skip_first_batches(loader, first) if first else loader
        model.train()
        for batch_index, (x, y) in enumerate(batches, start=first):
            lr = schedule_lr(step, cfg.schedule, peak_lr, per_epoch)
            set_lr(optimizer, lr)
            with accelerator.accumulate(model):
                x = x + 0.1 * torch.randn_like(x)  # stands for random augmentation
                loss = F.cross_entropy(model(x), y)
                if cfg.fault.nan_at_step == step:
                    loss = loss * float("nan")
                check_finite_loss(loss, step, accelerator, precision=cfg.run.precision)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.clip_grad is not None:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                optimizer.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.update(accelerator.unwrap_model(model), step=step)
            if step % cfg.run.log_every_steps == 0:
                bar.update(step, loss=loss.item(), lr=lr)
                log.train(step, loss=loss.item(), lr=lr)
            if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0:
                if cfg.fault.kill_during_save_at == step:
                    _kill_inside_next_save()
                ckpt.save(step, epoch, batch=batch_index + 1)
            if cfg.fault.kill_after_step == step:
                os.kill(os.getpid(), signal.SIGKILL)
            if step >= total:
                stopped_early = batch_index + 1 < len(loader)
                break
        # ============ evaluation (on the training images: this loop is about machinery, not accuracy) ============
        model.eval()
        with torch.no_grad():
            logits = accelerator.unwrap_model(model)(images.to(accelerator.device))
        top5 = logits.topk(5, dim=1).indices
        log.evaluation(
            epoch=epoch,
            step=step,
            top1=100.0 * (top5[:, 0] == labels).float().mean().item(),
            top5=100.0 * (top5 == labels[:, None]).any(dim=1).float().mean().item(),
            loss=F.cross_entropy(logits, labels).item(),
            train_loss=loss.item(),
        )
        # Where a resume continues: the next epoch, or the rest of this one when max_steps cut it short.
        ckpt.save(step, epoch, batch=batch_index + 1) if stopped_early else ckpt.save(step, epoch + 1)

    # ============ the end ============
    bar.close()
    export_final_model(model, output_dir / "model.pth", accelerator)
    if accelerator.is_main_process:
        plot_curves(log.path, output_dir / "curves.png", title="resmlp_tiny, random data")
    accelerator.end_training()


if __name__ == "__main__":
    cli = parse_command_line(TinyRecipe)
    train(cli.recipe, cli.output_dir)
