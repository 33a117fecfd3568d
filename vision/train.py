"""Supervised and knowledge-distilled ResMLP training (the DeiT recipe), on one process or many.

    accelerate launch [--config_file recipes/accelerate/X.yaml] -m vision.train --recipe recipes/vision/R.yaml \
        --output-dir runs/r [section.key=value ...]
    python -m vision.train --recipe recipes/vision/resmlp_digits.yaml --output-dir runs/digits

One ``train(cfg, output_dir)`` with a visible loop. What differs between supervised and distilled training is the
loss object (``vision.losses.build_loss``), never a flag inside the loop. Every schedule is a pure function of the
optimiser step, so a checkpoint's step is their whole state. Before the first step the run checks what it will
need (output folder writable, disk space for a checkpoint, data and weights readable, classes consistent); Ctrl-C
or SIGTERM finish the current step, save, and say how to resume. ``python -m vision.train --help`` lists every
recipe key with its default.
"""

from __future__ import annotations

import math
from pathlib import Path

from accelerate.utils import set_seed

from resmlp.cli import command
from trainkit import (
    CheckpointManager,
    GracefulStop,
    MetricsLogger,
    ProgressBar,
    WindowMean,
    build_accelerator,
    build_ema,
    build_optimizer,
    check_finite_loss,
    check_free_space,
    check_output_dir,
    checkpoint_bytes,
    export_final_model,
    parse_command_line,
    plot_curves,
    probe_dataset,
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
    output_dir = Path(output_dir)
    check_output_dir(output_dir)  # before anything writes there (TensorBoard, config.yaml, the first checkpoint)
    accelerator = build_accelerator(cfg.run, output_dir)
    set_seed(cfg.run.seed)
    if accelerator.is_main_process:
        save_resolved_config(cfg, output_dir)
    start_tracking(accelerator, cfg, run_name=output_dir.name)

    # ============ data, model, loss, optimiser (each checked before the first step) ============
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
    probe_dataset(loaders.train.dataset, "the training split")
    probe_dataset(loaders.val.dataset, "the validation split")
    model = build_model(cfg.model, loaders.num_classes, loaders.in_chans)
    loss_fn = build_training_loss(cfg, loaders.num_classes, model.config, accelerator.device)
    ema = build_ema(model, cfg.optim.ema_decay)
    check_free_space(output_dir / "checkpoints", checkpoint_bytes(model, cfg.optim.name, [ema]))
    total_batch = cfg.run.batch_size * accelerator.num_processes * cfg.run.grad_accum_steps
    optimizer = build_optimizer(model, cfg.optim, total_batch)
    peak_lr = cfg.optim.scaled_lr(total_batch)
    # The training loader is already sharded per process (vision/data/sampler.py): it is not prepared, or
    # accelerate would shard it a second time. The validation loader is, so gather_for_metrics drops padding.
    model, optimizer, val_loader = accelerator.prepare(model, optimizer, loaders.val)
    if cfg.run.compile:  # in place: parameter names, checkpoints and unwrap_model stay as they are
        model.compile()

    # ============ resume ============
    ckpt = CheckpointManager(
        output_dir / "checkpoints",
        accelerator,
        model=model,
        optimizer=optimizer,
        extras={"ema": ema} if ema is not None else {},
        keep_last=cfg.run.keep_last,
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
    # Training loss: the mean over the logging window (progress bar, TensorBoard) and over the steps since the
    # previous evaluation (metrics.jsonl, curves), across all processes. The latter survives a resume.
    window, since_eval = WindowMean(), WindowMean()
    since_eval.restore(start.extra.get("train_loss"))

    def state_extra() -> dict:
        return {"train_loss": since_eval.state(accelerator)}

    # ============ training ============
    step, metrics, lr = start.step, {}, schedule_lr(start.step, cfg.schedule, peak_lr, per_epoch)
    with bar, GracefulStop(accelerator) as stop:
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
                window.add(loss)
                since_eval.add(loss)
                if not accelerator.sync_gradients:
                    continue
                step += 1
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model), step=step)
                if step % cfg.run.log_every_steps == 0 or step == total:
                    mean_loss = window.compute(accelerator)
                    logs = {name: float(value) for name, value in out["logs"].items()}
                    bar.update(step, loss=mean_loss, lr=lr)
                    log.train(step, loss=mean_loss, lr=lr, **logs)
                ckpt.after_step(
                    stop,
                    step,
                    epoch,
                    batch=batch_index + 1,
                    epoch_done=batch_index + 1 >= loaders.steps_per_epoch,
                    total=total,
                    every=cfg.run.save_every_steps,
                    resume=cfg.run.resume,
                    extra=state_extra,
                )
                if step >= total:
                    break
            finished_epoch = batch_index + 1 >= loaders.steps_per_epoch

            # ============ evaluation ============
            if epoch == last_epoch or (epoch + 1) % cfg.run.eval_every_epochs == 0:
                metrics = evaluate(model, val_loader, accelerator)
                if ema is not None:
                    ema_metrics = evaluate(ema.module.to(accelerator.device), val_loader, accelerator)
                    metrics |= {f"ema_{k}": v for k, v in ema_metrics.items() if k in ("top1", "top5", "loss")}
                train_loss = since_eval.compute(accelerator)
                log.evaluation(epoch=epoch, step=step, epochs=step / per_epoch, lr=lr, train_loss=train_loss, **metrics)
                bar.write(f"epoch {epoch}: top1 {metrics['top1']:.2f}%  top5 {metrics['top5']:.2f}%")
            # Where a resume continues: the next epoch, or the rest of this one when max_steps cut it short.
            next_epoch, next_batch = (epoch + 1, 0) if finished_epoch else (epoch, batch_index + 1)
            ckpt.after_epoch(stop, step, next_epoch, next_batch=next_batch, resume=cfg.run.resume, extra=state_extra)

    # ============ the end ============
    export_final_model(model, output_dir / "model.pth", accelerator)
    skipped = {split: files for split, files in loaders.corrupt_files().items() if files}
    for split, files in skipped.items():
        accelerator.print(f"skipped {len(files)} unreadable image(s) in {split}: {', '.join(files[:5])}")
    if accelerator.is_main_process:
        plot_curves(log.path, output_dir / "curves.png", title=f"{cfg.model.name} on {cfg.data.dataset}")
    accelerator.end_training()
    return metrics


def resmlp_img_size(cfg: VisionRecipe) -> int | tuple[int, int]:
    """The preset's input size (used when the recipe does not set ``model.img_size``)."""
    import resmlp

    return resmlp.get_config(cfg.model.name).img_size


@command("vision.train")
def main(argv: list[str] | None = None) -> int:
    """Train from the command line; a user error is one line on stderr (status 2: usage, 1: failure)."""
    cli = parse_command_line(VisionRecipe, argv, prog="vision.train", description=__doc__.split("\n\n")[0])
    train(cli.recipe, cli.output_dir)
    return 0


if __name__ == "__main__":
    main()
