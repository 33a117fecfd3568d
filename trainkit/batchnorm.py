"""Batch norm across processes: every process normalises with the statistics of the whole global batch.

A batch-norm layer in a multi-process run normalises each process's slice of the batch with that slice's mean and
variance, so N processes at batch B/N do not train like one process at batch B. The reference DINO therefore
converts every batch norm of student and teacher to ``torch.nn.SyncBatchNorm`` when it runs on several GPUs
(``use_bn_in_head``, or a CNN backbone). ``torch.nn.SyncBatchNorm`` only takes CUDA tensors, so a CPU (gloo) group
needs another way to share the statistics; ``CrossProcessBatchNorm`` is that way::

    student = build_student(cfg)
    student = sync_batchnorm(student, accelerator)  # before the teacher is copied from it, before prepare
    teacher = make_teacher(student)

``sync_batchnorm`` does nothing for one process; on CUDA it uses timm's ``convert_sync_batchnorm`` (torch's
``SyncBatchNorm``, and timm's ``SyncBatchNormAct`` for its fused BatchNorm + activation layers); on the CPU it
swaps in ``CrossProcessBatchNorm`` (and ``CrossProcessBatchNormAct2d`` for timm's ``BatchNormAct2d``). Parameter
and buffer names stay the same, so checkpoints move between 1-process and N-process runs unchanged.

``CrossProcessBatchNorm`` all-reduces one vector per call: the per-channel sum, the sum of squares and the element
count of the local batch (summed in float64, so the variance ``E[x^2] - E[x]^2`` keeps its precision). The
reduction's backward is itself an all-reduce of the gradient with respect to those sums: each process then gets
the gradient of the loss of *every* process with respect to its own inputs, which after DDP's gradient averaging
is exactly the gradient of one process over the whole batch (the same scheme as ``torch.nn.SyncBatchNorm``).
Running statistics are updated from the global mean and unbiased variance, as a single process would.
"""

from __future__ import annotations

import functools

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum of ``tensor`` over the processes of ``group``; the backward sums the gradients the same way."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None


def _group_size(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def cross_process_batch_norm(bn: _BatchNorm, x: torch.Tensor, group=None) -> torch.Tensor:
    """``bn(x)`` with batch statistics over every process of ``group`` (the default group when None).

    In eval mode with running statistics, or without a process group of more than one process, this is the plain
    ``F.batch_norm`` of ``bn``; otherwise each call is one all-reduce, so every process must call it the same
    number of times (as with ``torch.nn.SyncBatchNorm``).
    """
    use_batch_stats = bn.training or not bn.track_running_stats
    if not use_batch_stats or _group_size(group) == 1:
        return _BatchNorm.forward(bn, x)
    if x.dim() < 2:
        raise ValueError(f"batch norm expects (N, C, ...) input, got shape {tuple(x.shape)}")
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    local = x.double()
    count = local.new_tensor([x.numel() // channels])
    stats = _AllReduceSum.apply(torch.cat([local.sum(dims), local.square().sum(dims), count]), group)
    total = stats[-1]
    mean = stats[:channels] / total
    var = (stats[channels : 2 * channels] / total - mean.square()).clamp_min(0.0)
    if bn.training and bn.track_running_stats:
        with torch.no_grad():
            unbiased = var * (total / (total - 1)) if total > 1 else var
            bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), factor)
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), factor)
    shape = [1, channels] + [1] * (x.dim() - 2)
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    scale = torch.rsqrt(var + bn.eps).to(compute)
    y = (x.to(compute) - mean.to(compute).view(shape)) * scale.view(shape)
    if bn.affine:
        y = y * bn.weight.to(compute).view(shape) + bn.bias.to(compute).view(shape)
    return y.to(x.dtype)


class CrossProcessBatchNorm(_BatchNorm):
    """Batch norm (1-d, 2-d or 3-d input) whose batch statistics span every process; see the module docstring.

    Same constructor, parameters, buffers and state dict as ``torch.nn.BatchNorm2d``; works on any device and
    backend (gloo on the CPU). ``process_group`` limits the reduction to a sub-group (None: every process).
    """

    def __init__(self, *args, process_group=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        return cross_process_batch_norm(self, x, self.process_group)


@functools.cache
def _batchnorm_act2d_class() -> type | None:
    """timm's ``BatchNormAct2d`` with cross-process statistics; None without timm (imported on first use)."""
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:
        return None

    class CrossProcessBatchNormAct2d(BatchNormAct2d):
        """timm's batch norm + drop + activation layer, normalising with statistics over every process."""

        process_group = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.drop(cross_process_batch_norm(self, x, self.process_group)))

    return CrossProcessBatchNormAct2d


def _rebuilt_as(module: nn.Module, cls: type, process_group) -> nn.Module:
    """A ``cls`` instance sharing every parameter, buffer, child and attribute of ``module``."""
    converted = cls.__new__(cls)
    converted.__dict__.update(module.__dict__)
    converted.process_group = process_group
    return converted


def convert_cross_process_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` (and timm ``BatchNormAct2d``) in ``module`` by its cross-process form.

    Works in place on the children and returns ``module`` (or its replacement when ``module`` itself is a batch
    norm), like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``. The converted layer shares the original's
    parameter tensors, buffers, training flag and settings, so names and state dicts do not change. Any other
    ``_BatchNorm`` subclass is refused with ``TypeError``: swapping it would silently lose its own forward.
    """
    act2d = _batchnorm_act2d_class()
    if isinstance(module, (CrossProcessBatchNorm, nn.SyncBatchNorm)) or (act2d and isinstance(module, act2d)):
        return module
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return _rebuilt_as(module, CrossProcessBatchNorm, process_group)
    if act2d is not None and type(module) is act2d.__base__:
        return _rebuilt_as(module, act2d, process_group)
    if isinstance(module, _BatchNorm):
        raise TypeError(
            f"cannot make {type(module).__name__} normalise across processes on the CPU (BatchNorm1d/2d/3d and timm's "
            "BatchNormAct2d can be); use one of those, or run on CUDA (SyncBatchNorm)"
        )
    for name, child in module.named_children():
        module.add_module(name, convert_cross_process_batchnorm(child, process_group))
    return module


def sync_batchnorm(module: nn.Module, accelerator) -> nn.Module:
    """``module`` with batch statistics across the processes of ``accelerator``'s run (see the module docstring).

    One process: ``module`` unchanged. CUDA: timm's ``convert_sync_batchnorm`` (``torch.nn.SyncBatchNorm``). CPU and
    other devices: ``convert_cross_process_batchnorm``. Call it before ``accelerator.prepare`` (DDP must see the
    final modules) and before copying a teacher from the model, so both normalise the same way.
    """
    if accelerator.num_processes == 1:
        return module
    if accelerator.device.type == "cuda":
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(module)
    return convert_cross_process_batchnorm(module)
