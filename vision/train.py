"""Supervised and knowledge-distilled ResMLP training (the DeiT recipe), on one process or many.

    accelerate launch [--config_file recipes/accelerate/X.yaml] -m vision.train --recipe recipes/vision/R.yaml \
        --output-dir runs/r [section.key=value ...]
    python -m vision.train --recipe recipes/vision/resmlp_digits.yaml --output-dir runs/digits

One ``train(cfg, output_dir)`` with a visible loop. What differs between supervised and distilled training is the
loss object (``vision.losses.build_loss``), never a flag inside the loop. Every schedule is a pure function of the
optimiser step, so a checkpoint's step is their whole state.
"""

from __future__ import annotations

import math
from pathlib import Path

from accelerate.utils import set_seed

from trainkit import (
    CheckpointManager,
    MetricsLogger,
    ProgressBar,
    RecipeError,
    build_accelerator,
    build_ema,
    build_optimizer,
    check_finite_loss,
    export_final_model,
    parse_command_line,
    plot_curves,
    save_resolved_config,
    schedule_lr,
    set_lr,
    start_tracking,
    steps_per_epoch,
)

from .builders import build_model, build_training_loss, describe_run
from .data import build_loaders
from .evaluate import evaluate
from .recipe import VisionRecipe


def train(cfg: VisionRecipe, output_dir: Path) -> dict[str, float]:
    """Train ``cfg`` into ``output_dir``; returns the last evaluation's metrics."""
    accelerator = build_accelerator(cfg.run, output_dir)
    set_seed(cfg.run.seed)
    if accelerator.is_main_process:
        save_resolved_config(cfg, output_dir)
    start_tracking(accelerator, cfg, run_name=output_dir.name)

    # ============ data, model, loss, optimiser ============
    loaders = build_loaders(
        cfg.data,
        cfg.augment,
        cfg.eval,
        img_size=cfg.model.img_size or resmlp_img_size(cfg),
        batch_size=cfg.run.batch_size,
        world_size=accelerator.num_processes,
        rank=accelerator.process_index,
        seed=cfg.run.seed,
        num_workers=cfg.run.num_workers,
    )
    model = build_model(cfg.model, loaders.num_classes, loaders.in_chans)
    loss_fn = build_training_loss(cfg, loaders.num_classes, model.config, accelerator.device)
    ema = build_ema(model, cfg.optim.ema_decay)
    total_batch = cfg.run.batch_size * accelerator.num_processes * cfg.run.grad_accum_steps
    optimizer = build_optimizer(model, cfg.optim, total_batch)
    peak_lr = cfg.optim.scaled_lr(total_batch)
    # The training loader is already sharded per process (vision/data/sampler.py): it is not prepared, or
    # accelerate would shard it a second time. The validation loader is, so gather_for_metrics drops padding.
    model, optimizer, val_loader = accelerator.prepare(model, optimizer, loaders.val)

    # ============ resume ============
    ckpt = CheckpointManager(
        output_dir / "checkpoints", accelerator, keep_last=cfg.run.keep_last, extra_objects=[ema] if ema else []
    )
    start = ckpt.resume(cfg.run.resume)
    log = MetricsLogger(output_dir, accelerator, resume_step=start.step)
    per_epoch = steps_per_epoch(loaders.steps_per_epoch, cfg.run.grad_accum_steps)
    total = cfg.schedule.epochs * per_epoch
    if cfg.run.max_steps is not None:
        total = min(total, cfg.run.max_steps)
    last_epoch = min(cfg.schedule.epochs, math.ceil(total / per_epoch)) - 1
    accelerator.print(describe_run(cfg, loaders, accelerator.num_processes, total_batch, peak_lr, total, start))
    bar = ProgressBar(total, accelerator, images_per_step=total_batch, initial=start.step)

    # ============ training ============
    step, metrics = start.step, {}
    for epoch in range(start.epoch, last_epoch + 1):
        first = start.batch if epoch == start.epoch else 0
        loaders.set_epoch(epoch, start_step=first)  # the sampler skips the batches a resumed run already saw
        model.train()
        batch_index = first - 1
        for batch_index, (images, targets) in enumerate(loaders.train, start=first):
            images, targets = images.to(accelerator.device), targets.to(accelerator.device)
            if loaders.mixup is not None:
                images, targets = loaders.mixup(images, targets)
            lr = schedule_lr(step, cfg.schedule, peak_lr, per_epoch)
            set_lr(optimizer, lr)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    out = loss_fn(model(images), targets, images)
                loss = out["loss"]
                check_finite_loss(loss, step, accelerator, precision=cfg.run.precision)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.clip_grad is not None:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.update(accelerator.unwrap_model(model), step=step)
            if step % cfg.run.log_every_steps == 0 or step == total:
                logs = {name: float(value) for name, value in out["logs"].items()}
                bar.update(step, loss=loss.item(), lr=lr)
                log.train(step, loss=loss.item(), lr=lr, **logs)
            if cfg.run.save_every_steps and step % cfg.run.save_every_steps == 0 and step < total:
                ckpt.save(step, epoch, batch=batch_index + 1)
            if step >= total:
                break
        finished_epoch = batch_index + 1 >= loaders.steps_per_epoch

        # ============ evaluation ============
        if epoch == last_epoch or (epoch + 1) % cfg.run.eval_every_epochs == 0:
            metrics = evaluate(model, val_loader, accelerator)
            if ema is not None:
                ema_metrics = evaluate(ema.module.to(accelerator.device), val_loader, accelerator)
                metrics |= {f"ema_{k}": v for k, v in ema_metrics.items() if k in ("top1", "top5", "loss")}
            log.evaluation(epoch=epoch, step=step, lr=lr, train_loss=loss.item(), **metrics)
            bar.write(f"epoch {epoch}: top1 {metrics['top1']:.2f}%  top5 {metrics['top5']:.2f}%")
        # Where a resume continues: the next epoch, or the rest of this one when max_steps cut it short.
        ckpt.save(step, epoch + 1) if finished_epoch else ckpt.save(step, epoch, batch=batch_index + 1)

    # ============ the end ============
    bar.close()
    export_final_model(model, output_dir / "model.pth", accelerator)
    if accelerator.is_main_process:
        plot_curves(log.path, output_dir / "curves.png", title=f"{cfg.model.name} on {cfg.data.dataset}")
    accelerator.end_training()
    return metrics


def resmlp_img_size(cfg: VisionRecipe) -> int | tuple[int, int]:
    """The preset's input size (used when the recipe does not set ``model.img_size``)."""
    import resmlp

    return resmlp.get_config(cfg.model.name).img_size


def main(argv: list[str] | None = None) -> None:
    try:
        cli = parse_command_line(VisionRecipe, argv, prog="vision.train")
    except RecipeError as err:
        raise SystemExit(f"vision.train: error: {err}") from None
    train(cli.recipe, cli.output_dir)


if __name__ == "__main__":
    main()
