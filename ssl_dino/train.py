"""DINO self-supervised pretraining of ResMLP (or a timm backbone), on one process or many.

    accelerate launch [--config_file recipes/accelerate/X.yaml] -m ssl_dino.train --recipe recipes/dino/R.yaml \
        --output-dir runs/r [section.key=value ...]
    python -m ssl_dino.train --recipe recipes/dino/resmlp_digits.yaml --output-dir runs/dino_digits

One ``train(cfg, output_dir)`` with a visible loop, as ``vision.train``. The student goes through
``accelerator.prepare``; the EMA teacher does not (no gradients, no optimiser: each process applies the same update
from ``accelerator.unwrap_model(student)``). Every schedule (lr, weight decay, teacher momentum and temperature) is a
pure function of the optimiser step; the teacher and the loss's centre are saved with the checkpoints (as
safetensors, never pickles), so a resumed run continues exactly. Before the first step the run checks what it will
need and warns when the schedule is too short for the teacher to move; Ctrl-C or SIGTERM finish the step, save and
say how to resume. Output directory: config.yaml, metrics.jsonl (one record per epoch: loss, teacher entropy and
the online k-NN), tensorboard/, checkpoints/, curves.png, and model.pth, the teacher backbone as plain weights for
``resmlp.create_model``. ``python -m ssl_dino.train --help`` lists every recipe key with its default.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset

import resmlp
from resmlp.cli import UsageError, command
from trainkit import (
    CheckpointManager,
    EpochShuffle,
    GracefulStop,
    MetricsLogger,
    Panel,
    ProgressBar,
    WindowMean,
    build_accelerator,
    build_optimizer,
    check_finite_loss,
    check_free_space,
    check_output_dir,
    checkpoint_bytes,
    ignore_in_workers,
    parse_command_line,
    plot_curves,
    probe_dataset,
    save_resolved_config,
    start_tracking,
    steps_per_epoch,
)
from trainkit.batchnorm import sync_batchnorm

from .backbone import MultiCropBackbone, build_backbone, native_input_size
from .clipping import clip_gradients
from .crop_policy import make_crop_policy
from .data import build_dataset
from .derived_mixing import check_derivable
from .head import DINOHead, cancel_last_layer_grads
from .loss import DINOLoss
from .monitor import KnnMonitor
from .recipe import DinoRecipe
from .schedules import DINOSchedule
from .teacher import make_teacher, short_schedule_warning, update_teacher

# What curves.png shows: DINO's own loss, the teacher's entropy (collapse shows there) and the online k-NN.
DINO_PANELS = (
    Panel("DINO loss", "loss", (("train_loss", "training loss (mean over the interval)"),)),
    Panel("teacher entropy", "nats", (("teacher_entropy", "teacher entropy"), ("max_entropy", "ln K (uniform)"))),
    Panel("online k-NN of the teacher", "accuracy (%)", (("knn_top1", "k-NN top-1"), ("knn_top5", "k-NN top-5"))),
)


class SetupError(UsageError, ValueError):
    """A recipe that cannot train (unknown backbone, a crop policy the backbone cannot take); raised before any work."""


class SeededViews(Dataset):
    """``dataset[i]`` with its random augmentation seeded by (seed, epoch, i), leaving the global RNGs untouched.

    Augmentations then depend on nothing but the sample and the epoch: not on how many batches the prepared loader
    fetched ahead (accelerate prefetches one, so a checkpoint's RNG state would otherwise miss that batch's draws and
    a resumed run would differ), nor on the process count or the worker that loads the sample.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_seed = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            random.seed(sample_seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)


def build_student(cfg: DinoRecipe) -> MultiCropBackbone:
    """Backbone + DINO head + crop policy, checked together; ``SetupError`` says why a combination cannot work."""
    try:
        backbone = build_backbone(
            cfg.backbone.name,
            img_size=cfg.backbone.img_size,
            drop_path_rate=cfg.backbone.drop_path_rate,
            variant=cfg.backbone.variant_overrides(),
        )
        if cfg.crops.policy.startswith("derived") and isinstance(backbone, resmlp.ResMLP):
            check_derivable(backbone)
        native = native_input_size(backbone)
        global_size = cfg.backbone.img_size or (native[0] if native else 224)
        policy = make_crop_policy(
            cfg.crops.policy,
            global_size=global_size,
            local_size=cfg.crops.local_size,
            num_local_crops=cfg.crops.num_local_crops,
            global_scale=cfg.crops.global_scale,
            local_scale=cfg.crops.local_scale,
            size_multiple=backbone.patch_embed.patch_size if isinstance(backbone, resmlp.ResMLP) else 1,
        )
        d = cfg.dino
        head = DINOHead(
            backbone.num_features,
            d.out_dim,
            use_bn=d.use_bn_in_head,
            norm_last_layer=d.norm_last_layer,
            nlayers=d.nlayers,
            hidden_dim=d.hidden_dim,
            bottleneck_dim=d.bottleneck_dim,
        )
        return MultiCropBackbone(backbone, head, policy)
    except (KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        raise SetupError(f"{cfg.backbone.name} with crop policy {cfg.crops.policy!r}: {message}") from err


def train(cfg: DinoRecipe, output_dir: Path) -> dict[str, float]:
    """Pretrain ``cfg`` into ``output_dir``; returns the last k-NN monitor result (empty when disabled)."""
    output_dir = Path(output_dir)
    set_seed(cfg.run.seed)
    student = build_student(cfg)  # first: a recipe that cannot work fails before any process group or file
    policy = student.policy
    check_output_dir(output_dir)  # before anything writes there (TensorBoard, config.yaml, the first checkpoint)
    accelerator = build_accelerator(cfg.run, output_dir)
    # As the reference: batch statistics over every process in student and teacher (BN head, CNN backbones).
    student = sync_batchnorm(student, accelerator)
    if accelerator.is_main_process:
        save_resolved_config(cfg, output_dir)
    start_tracking(accelerator, cfg, run_name=output_dir.name)

    # ============ data, teacher, loss, optimiser (each checked before the first step) ============
    images = build_dataset(
        cfg.data.dataset,
        "train",
        policy.augmentation(),
        img_size=policy.global_size,
        skip_corrupt_images=cfg.data.skip_corrupt_images,
    )
    probe_dataset(images, "the training split")
    dataset = SeededViews(images, cfg.run.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.run.batch_size,
        sampler=EpochShuffle(len(dataset), cfg.run.seed),
        drop_last=True,
        num_workers=cfg.run.num_workers,
        worker_init_fn=ignore_in_workers if cfg.run.num_workers else None,  # Ctrl-C is the loop's to handle
        generator=torch.Generator(),  # iterator creation draws nothing from the global RNG
    )
    teacher = make_teacher(student).to(accelerator.device)
    dino_loss = DINOLoss(
        cfg.dino.out_dim, student_temp=cfg.dino.student_temp, center_momentum=cfg.dino.center_momentum
    ).to(accelerator.device)
    check_free_space(output_dir / "checkpoints", checkpoint_bytes(student, cfg.optim.name, [teacher, dino_loss]))
    total_batch = cfg.run.batch_size * accelerator.num_processes * cfg.run.grad_accum_steps
    optimizer = build_optimizer(student, cfg.optim, total_batch)
    student, optimizer, loader = accelerator.prepare(student, optimizer, loader)
    if cfg.run.compile:  # in place: parameter names, checkpoints and unwrap_model stay as they are
        student.compile()
        teacher.compile()
    monitor = None
    if cfg.monitor.every_epochs:
        monitor = KnnMonitor(
            cfg.monitor,
            cfg.data.dataset,
            policy.global_size,
            accelerator,
            seed=cfg.run.seed,
            skip_corrupt_images=cfg.data.skip_corrupt_images,
        )

    # ============ resume (teacher and centre are part of the state) ============
    ckpt = CheckpointManager(
        output_dir / "checkpoints",
        accelerator,
        model=student,
        optimizer=optimizer,
        extras={"teacher": teacher, "dino_loss": dino_loss},
        keep_last=cfg.run.keep_last,
    )
    start = ckpt.resume(cfg.run.resume)
    log = MetricsLogger(output_dir, accelerator, resume_step=start.step)
    per_epoch = steps_per_epoch(len(loader), cfg.run.grad_accum_steps)
    schedule = DINOSchedule(
        epochs=cfg.schedule.epochs,
        steps_per_epoch=per_epoch,
        lr=cfg.optim.scaled_lr(total_batch),
        min_lr=cfg.schedule.min_lr,
        warmup_epochs=cfg.schedule.warmup_epochs,
        weight_decay=cfg.optim.weight_decay,
        weight_decay_end=cfg.dino.weight_decay_end,
        momentum_teacher=cfg.dino.momentum_teacher,
        warmup_teacher_temp=cfg.dino.warmup_teacher_temp,
        teacher_temp=cfg.dino.teacher_temp,
        warmup_teacher_temp_epochs=cfg.dino.warmup_teacher_temp_epochs,
        teacher_temp_per_iteration=cfg.dino.teacher_temp_per_iteration,
    )
    total = schedule.total_steps if cfg.run.max_steps is None else min(schedule.total_steps, cfg.run.max_steps)
    last_epoch = min(cfg.schedule.epochs, -(-total // per_epoch)) - 1
    accelerator.print(
        f"DINO {cfg.backbone.name}, crops {policy.name} ({policy.num_crops} views: 2x{policy.global_size}px + "
        f"{policy.num_local_crops}x{policy.local_input_size}px), {len(dataset)} images, {accelerator.num_processes} "
        f"process(es), total batch {total_batch}, peak lr {schedule.lr:.3g}, {total} steps, from step {start.step}"
    )
    still = short_schedule_warning(cfg.dino.momentum_teacher, schedule.total_steps, total, per_epoch)
    if still and start.step == 0:
        accelerator.print(f"WARNING: {still}")
    bar = ProgressBar(total, accelerator, images_per_step=total_batch, initial=start.step)
    max_entropy = math.log(cfg.dino.out_dim)
    knn: dict[str, float] = {}
    if monitor is not None and start.step == 0:
        knn = monitor(teacher.backbone)
        log.record(epoch=-1, step=0, epochs=0.0, max_entropy=max_entropy, **knn)
        bar.write(f"before training: k-NN top1 {knn['knn_top1']:.2f}%")
    # The loss over the logging window (progress bar, TensorBoard) and over the epoch (metrics.jsonl, curves),
    # both across all processes; the teacher's entropy over the epoch's logging points. Both survive a resume.
    window, epoch_loss, epoch_entropy = WindowMean(), WindowMean(), WindowMean()
    epoch_loss.restore(start.extra.get("train_loss"))
    epoch_entropy.restore(start.extra.get("teacher_entropy"))

    def state_extra() -> dict:
        return {"train_loss": epoch_loss.state(accelerator), "teacher_entropy": epoch_entropy.state(accelerator)}

    # ============ training ============
    step, warned_epoch = start.step, -1
    with bar, GracefulStop(accelerator) as stop:
        for epoch in range(start.epoch, last_epoch + 1):
            loader.set_epoch(epoch)  # on the prepared loader: its own epoch counter restarts at 0 after a resume
            dataset.set_epoch(epoch)
            first = start.batch if epoch == start.epoch else 0
            batches = accelerator.skip_first_batches(loader, first) if first else loader
            student.train()
            batch_index = first - 1
            for batch_index, (crops, _) in enumerate(batches, start=first):
                values = schedule.at(step)
                for i, group in enumerate(optimizer.param_groups):
                    group["lr"] = values["lr"]
                    if i == 0:  # only the decayed group (matrices) follows the weight-decay schedule
                        group["weight_decay"] = values["weight_decay"]
                with accelerator.accumulate(student):
                    with accelerator.autocast():
                        with torch.no_grad():
                            teacher_out = teacher(crops[:2])  # only the global views go through the teacher
                        student_out = student(crops)
                        loss = dino_loss(student_out, teacher_out, values["teacher_temp"])
                    check_finite_loss(loss, step, accelerator, precision=cfg.run.precision)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.unscale_gradients()  # no-op unless fp16
                        if cfg.dino.clip_grad:
                            clip_gradients(student, cfg.dino.clip_grad)
                        if epoch < cfg.dino.freeze_last_layer:
                            cancel_last_layer_grads(student)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                window.add(loss)
                epoch_loss.add(loss)
                if not accelerator.sync_gradients:
                    continue
                update_teacher(accelerator.unwrap_model(student), teacher, values["teacher_momentum"])
                step += 1
                if step % cfg.run.log_every_steps == 0 or step == total:
                    stats, warning = dino_loss.diagnostics(student_out, teacher_out, values["teacher_temp"], loss)
                    epoch_entropy.add(stats["teacher_entropy"])
                    mean_loss = window.compute(accelerator)
                    scalars = {k: v for k, v in values.items() if k != "lr"} | stats | {"loss": mean_loss}
                    bar.update(step, loss=mean_loss, lr=values["lr"], entropy=stats["teacher_entropy"])
                    log.train(step, lr=values["lr"], **scalars)
                    # Near ln(K) is expected at initialisation: warn from the second epoch on, once per epoch.
                    if warning and epoch >= 1 and warned_epoch != epoch:
                        warned_epoch = epoch
                        bar.write(f"WARNING (step {step}): {warning}")
                ckpt.after_step(
                    stop,
                    step,
                    epoch,
                    batch=batch_index + 1,
                    epoch_done=batch_index + 1 >= len(loader),
                    total=total,
                    every=cfg.run.save_every_steps,
                    resume=cfg.run.resume,
                    extra=state_extra,
                )
                if step >= total:
                    break
            finished_epoch = batch_index + 1 >= len(loader)

            # ============ one record per epoch: loss, teacher entropy, and the online k-NN when it runs ============
            record = {"epochs": step / per_epoch, "max_entropy": max_entropy}
            record |= {
                "train_loss": epoch_loss.compute(accelerator),
                "teacher_entropy": epoch_entropy.compute(accelerator),
            }
            if monitor is not None and (epoch == last_epoch or (epoch + 1) % cfg.monitor.every_epochs == 0):
                knn = monitor(teacher.backbone)
                record |= knn
                bar.write(f"epoch {epoch}: k-NN top1 {knn['knn_top1']:.2f}%  top5 {knn['knn_top5']:.2f}%")
            log.record(epoch=epoch, step=step, **record)
            next_epoch, next_batch = (epoch + 1, 0) if finished_epoch else (epoch, batch_index + 1)
            ckpt.after_epoch(stop, step, next_epoch, next_batch=next_batch, resume=cfg.run.resume, extra=state_extra)

    # ============ the end: the teacher backbone as plain weights ============
    if accelerator.is_main_process:
        export_backbone(teacher.backbone, output_dir / "model.pth")
        if log.path.is_file():
            title = f"DINO {cfg.backbone.name} on {cfg.data.dataset}"
            plot_curves(log.path, output_dir / "curves.png", title=title, panels=DINO_PANELS)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return knn


def export_backbone(backbone: torch.nn.Module, path: Path) -> Path:
    """A ResMLP goes out through ``resmlp.save_model`` (``resmlp.create_model(name, checkpoint=path,
    num_classes=0)`` loads it); a timm backbone as a plain state dict."""
    if isinstance(backbone, resmlp.ResMLP):
        return resmlp.save_model(backbone, path)
    torch.save({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, path)
    return path


@command("ssl_dino.train")
def main(argv: list[str] | None = None) -> int:
    """Pretrain from the command line; a user error is one line on stderr (status 2: usage, 1: failure)."""
    cli = parse_command_line(DinoRecipe, argv, prog="ssl_dino.train", description=__doc__.split("\n\n")[0])
    train(cli.recipe, cli.output_dir)
    return 0


if __name__ == "__main__":
    main()
