"""Small builders that turn recipe sections into the model and the loss of a vision run."""

from __future__ import annotations

from pathlib import Path

import torch

import resmlp
from resmlp import ResMLPConfig
from trainkit import Position, PreflightError, RecipeError

from .losses import SupervisedLoss, build_loss
from .recipe import ModelConfig, VisionRecipe
from .teacher import load_teacher


def build_model(model: ModelConfig, num_classes: int, in_chans: int) -> resmlp.ResMLP:
    """The student: a resmlp preset sized for the data, optionally initialised from a checkpoint (fine-tuning)."""
    overrides = {"in_chans": in_chans, "drop_path_rate": model.drop_path_rate, **model.variant_overrides()}
    if model.img_size is not None:
        overrides["img_size"] = model.img_size
    if model.checkpoint and not resmlp.zoo.is_tag(model.checkpoint) and not Path(model.checkpoint).is_file():
        raise PreflightError(
            f"model.checkpoint {model.checkpoint}: no such file; pass the weights to fine-tune from (any file "
            "resmlp.create_model reads, or a released tag such as resmlp_s12.fb_in1k), or model.checkpoint='' to "
            "train from scratch"
        )
    try:
        return resmlp.create_model(
            model.name,
            checkpoint=model.checkpoint or None,
            num_classes=num_classes,
            fresh_head=model.fresh_head,
            **overrides,
        )
    except (ValueError, TypeError) as err:
        if isinstance(err, resmlp.CheckpointError):
            raise
        # The recipe's model section does not give a valid architecture (e.g. an image size the patch does not
        # divide): a recipe error, named by its section.
        raise RecipeError(f"model ({model.name}, img_size={model.img_size}, in_chans={in_chans}): {err}") from None


def build_training_loss(
    cfg: VisionRecipe, num_classes: int, student: ResMLPConfig, device: torch.device
) -> SupervisedLoss:
    """The supervised loss, or DeiT-style distillation from a frozen teacher kept out of ``accelerator.prepare``."""
    teacher = None
    if cfg.distill.kind != "none":
        extra = (
            {"img_size": student.img_size, "in_chans": student.in_chans}
            if cfg.distill.teacher in (resmlp.list_models())
            else {}
        )
        teacher = load_teacher(
            cfg.distill.teacher,
            cfg.distill.teacher_weights,
            num_classes=num_classes,
            source=cfg.distill.teacher_source,
            **extra,
        ).to(device)
    return build_loss(cfg.augment, cfg.distill, teacher)


def describe_run(
    cfg: VisionRecipe, loaders, processes: int, total_batch: int, peak_lr: float, total: int, start: Position
) -> str:
    """One paragraph printed at the start: what is trained on what, with which batch and schedule."""
    resumed = f", resuming at step {start.step} (epoch {start.epoch}, batch {start.batch})" if start.step else ""
    return (
        f"{cfg.model.name} on {cfg.data.dataset} ({loaders.num_classes} classes, {loaders.in_chans} channels): "
        f"{processes} process(es) x batch {cfg.run.batch_size} x accumulation {cfg.run.grad_accum_steps} = "
        f"{total_batch} images per step, {loaders.steps_per_epoch} steps per epoch, {total} steps, "
        f"{cfg.optim.name} at peak lr {peak_lr:.3g}, distillation {cfg.distill.kind}{resumed}"
    )
