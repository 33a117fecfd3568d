"""Build the ``accelerate.Accelerator`` from the recipe, and refuse launches that would split into independent runs.

A launcher that starts N processes without making them one process group gives N independent trainings, each
believing it is alone: same data, N copies of every checkpoint write, no error. On a machine without a GPU,
``accelerate launch --multi_gpu --num_processes 2`` does exactly that unless the Accelerator is told to use the CPU
(accelerate only forms a CPU group when ``cpu=True`` or ``ACCELERATE_USE_CPU`` is set). ``build_accelerator``
therefore turns a torchrun-style launch (``WORLD_SIZE > 1``) without CUDA into a CPU (gloo) group, then checks that
the group it got has the size the launcher announced::

    accelerator = build_accelerator(cfg.run, output_dir)
    start_tracking(accelerator, cfg, run_name=output_dir.name)   # TensorBoard hparams from the flattened recipe
    ...
    accelerator.end_training()

Launch configurations (hardware only) live in ``recipes/accelerate/``; see docs/training.md.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from resmlp.cli import UserError

from .recipe_dump import flatten
from .sections import RunConfig


class LaunchError(UserError, RuntimeError):
    """The processes of this launch do not form the single process group the launcher asked for."""


def env_world_size(environ: dict[str, str] | None = None) -> int:
    """Number of processes the launcher says it started (torchrun/accelerate ``WORLD_SIZE``, MPI variants)."""
    environ = os.environ if environ is None else environ
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if environ.get(name):
            return int(environ[name])
    return 1


def check_process_group(launched: int, num_processes: int, group_size: int | None, *, cuda: bool = False) -> None:
    """Refuse a launch whose processes would not train together.

    Args:
        launched: Processes the launcher started (``env_world_size()``).
        num_processes: What the Accelerator believes (``accelerator.num_processes``).
        group_size: Size of the initialised ``torch.distributed`` group, or None when there is none.
        cuda: Whether CUDA is available (only changes the advice).
    """
    if launched <= 1 and num_processes == 1:
        return
    fix = (
        "Build the Accelerator with trainkit.accel.build_accelerator (it selects a CPU/gloo group when there is no "
        "GPU), or launch with ACCELERATE_USE_CPU=true in the environment, or use "
        "`accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml ...`."
    )
    if not cuda:
        fix += " Note that `accelerate launch --cpu --num_processes N` starts a single process."
    if num_processes == 1 and launched > 1:
        raise LaunchError(
            f"the launcher started {launched} processes (WORLD_SIZE={launched}) but this one formed no process "
            f"group: they would run {launched} independent trainings on the same data, each writing the same "
            f"checkpoints. {fix}"
        )
    if launched not in (num_processes, 1) or (group_size is not None and group_size != num_processes):
        raise LaunchError(
            f"process-group size mismatch: the launcher started {launched} processes, the Accelerator counts "
            f"{num_processes} and torch.distributed reports {group_size}. Every process must join one group. {fix}"
        )


def _check_gpus_per_node(environ: dict[str, str]) -> None:
    local = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    visible = torch.cuda.device_count()
    if visible and local > visible and environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        raise LaunchError(
            f"{local} processes per node but only {visible} GPU(s) visible: NCCL cannot place two processes on one "
            f"GPU. Launch at most {visible} processes per node (--num_processes), or set ACCELERATE_USE_CPU=true "
            "for a CPU group."
        )


def build_accelerator(run: RunConfig, output_dir: str | os.PathLike, **kwargs: Any):
    """Accelerator with the recipe's precision and accumulation, logging to ``output_dir/tensorboard``.

    Under a multi-process launch without CUDA the Accelerator is built on the CPU so the processes form one gloo
    group; the group is then verified (``check_process_group``), raising ``LaunchError`` before any work is done.
    ``kwargs`` go to ``Accelerator`` (e.g. ``step_scheduler_with_optimizer=False``).
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    launched = env_world_size()
    cuda = torch.cuda.is_available()
    if launched > 1 and cuda:
        _check_gpus_per_node(dict(os.environ))
    if run.precision == "fp16" and not cuda:
        raise LaunchError("precision fp16 needs a CUDA GPU; use run.precision=bf16 or run.precision=no on the CPU")
    launch_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launch_precision not in ("no", run.precision):
        warnings.warn(
            f"the launch asked for mixed precision {launch_precision!r} but the recipe says run.precision="
            f"{run.precision!r}; the recipe wins. Pass run.precision={launch_precision} to change it.",
            stacklevel=2,
        )
    output_dir = Path(output_dir)
    project = ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "tensorboard"))
    accelerator = Accelerator(
        cpu=kwargs.pop("cpu", False) or (launched > 1 and not cuda),
        mixed_precision=run.precision,
        gradient_accumulation_steps=run.grad_accum_steps,
        log_with="tensorboard" if run.tensorboard else None,
        project_config=project,
        **kwargs,
    )
    group = torch.distributed.get_world_size() if torch.distributed.is_initialized() else None
    check_process_group(launched, accelerator.num_processes, group, cuda=cuda)
    return accelerator


def start_tracking(accelerator, recipe: Any, run_name: str) -> None:
    """``init_trackers`` with the recipe flattened to scalars (``optim.lr``: 0.005 ...), TensorBoard's hparams."""
    accelerator.init_trackers(run_name, config=flatten(recipe))
