"""The full vision recipe: the model section plus vision's and trainkit's shared sections, one frozen tree.

YAML keys map 1:1 onto these fields (``model.name``, ``data.dataset``, ``optim.lr`` ...); precedence is the
defaults below (the paper's ImageNet recipe for ResMLP-S12) < the YAML file < ``section.key=value`` on the command
line. ``trainkit.recipe`` does the loading and names unknown keys and wrongly typed values.
"""

from __future__ import annotations

from dataclasses import dataclass

import resmlp
from trainkit.sections import OptimConfig, RunConfig, ScheduleConfig
from trainkit.variant import ArchitectureVariant

from .config import AugmentConfig, DataConfig, DistillConfig, EvalConfig


@dataclass(frozen=True)
class ModelConfig(ArchitectureVariant):
    """Which ResMLP to train.

    Attributes:
        name: A ``resmlp`` preset (``resmlp_s12`` ...); see ``resmlp.list_models()``.
        img_size: Input size; null keeps the preset's (224 for the paper's models).
        drop_path_rate: Stochastic depth, uniform across blocks (0.05 for S12 in the paper, deit#106).
        checkpoint: Weights to start from (fine-tuning): any file ``resmlp.create_model`` reads, or a released tag
            (``resmlp_s12.fb_distilled_in1k``); empty: random init.
        fresh_head: Start with a new classifier instead of the checkpoint's (another number of classes).
        token_mixer, token_mlp_ratio, norm, act, global_pool: the paper's ablations (``trainkit.variant``).
    """

    name: str = "resmlp_s12"
    img_size: int | None = None
    drop_path_rate: float = 0.05
    checkpoint: str = ""
    fresh_head: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name not in resmlp.list_models():
            raise ValueError(f"model.name {self.name!r} is not a resmlp preset; choose one of {resmlp.list_models()}")
        if self.fresh_head and not self.checkpoint:
            raise ValueError("model.fresh_head only applies when fine-tuning: set model.checkpoint too")


@dataclass(frozen=True)
class VisionRecipe:
    """Everything one supervised or distilled training run needs (hardware lives in the accelerate config)."""

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    distill: DistillConfig = DistillConfig()
    eval: EvalConfig = EvalConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    run: RunConfig = RunConfig()
