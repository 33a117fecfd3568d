"""Shared training pieces for vision/ and ssl_dino/: recipes, accelerate set-up, checkpoints, schedules, logging.

Each module holds one concept and its docstring shows its use in a loop; docs/training.md puts them together.
The task packages import from here, never from each other. ``accelerate``, ``timm`` and ``matplotlib`` are
imported inside the functions that need them, so ``import trainkit`` stays light.
"""

from .accel import LaunchError, build_accelerator, check_process_group, start_tracking
from .checkpoints import CheckpointManager, Position, ResumeError, export_final_model
from .curves import Panel, plot_curves
from .guards import NonFiniteLossError, check_finite_loss
from .interrupts import GracefulStop, Interrupted, ignore_in_workers
from .metrics import JsonlWriter, MetricsLogger, WindowMean, read_jsonl
from .optim import build_ema, build_optimizer, param_groups
from .preflight import PreflightError, check_free_space, check_output_dir, checkpoint_bytes, probe_dataset
from .progress import ProgressBar
from .recipe import CommandLine, RecipeError, load_recipe, parse_command_line, save_resolved_config
from .recipe_help import describe_recipe
from .sampling import EpochShuffle
from .schedules import cosine_between, lr_at, schedule_lr, set_lr, steps_per_epoch
from .sections import OptimConfig, RunConfig, ScheduleConfig

__all__ = [
    "CheckpointManager",
    "CommandLine",
    "EpochShuffle",
    "GracefulStop",
    "Interrupted",
    "JsonlWriter",
    "LaunchError",
    "MetricsLogger",
    "NonFiniteLossError",
    "OptimConfig",
    "Panel",
    "Position",
    "PreflightError",
    "ProgressBar",
    "RecipeError",
    "ResumeError",
    "RunConfig",
    "ScheduleConfig",
    "WindowMean",
    "build_accelerator",
    "build_ema",
    "build_optimizer",
    "check_finite_loss",
    "check_free_space",
    "check_output_dir",
    "check_process_group",
    "checkpoint_bytes",
    "cosine_between",
    "describe_recipe",
    "export_final_model",
    "ignore_in_workers",
    "load_recipe",
    "lr_at",
    "param_groups",
    "parse_command_line",
    "plot_curves",
    "probe_dataset",
    "read_jsonl",
    "save_resolved_config",
    "schedule_lr",
    "set_lr",
    "start_tracking",
    "steps_per_epoch",
]
