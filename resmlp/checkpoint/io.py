"""Read any supported ResMLP checkpoint into a model, and write ours atomically (optionally in other layouts)."""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .containers import OUR_FORMAT_KEY, OUR_FORMAT_VERSION, unwrap
from .layouts import LAYOUTS, convert, to_resmlp
from .safe_load import CheckpointError, safe_load

_HEAD_KEYS = ("head.weight", "head.bias")
_BLOCK_INDEX = re.compile(r"blocks\.\d+\.")
_GENERIC_HINT = " (another width or MLP ratio?)"
_MAX_GENERIC = 3


def read_checkpoint(
    path: str | os.PathLike, *, key: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Load a checkpoint file of any supported kind: ``(state dict in our layout, stored config or None)``."""
    state_dict, config = unwrap(safe_load(path), key=key)
    try:
        return to_resmlp(state_dict), config
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err


def infer_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture fields recoverable from tensor shapes (square token grid assumed for the image size).

    Args:
        state_dict: Weights in this library's layout (what ``read_checkpoint`` returns).
    """
    needed = ("patch_embed.proj.weight", "blocks.0.token_mix.op.weight", "blocks.0.channel_mix.op.fc1.weight")
    absent = [k for k in needed if k not in state_dict]
    if absent:
        raise CheckpointError(
            f"cannot infer the architecture: the weights lack {absent}; pass a full ResMLP state dict in the "
            "resmlp layout (resmlp.checkpoint.to_resmlp converts deit and timm ones)"
        )
    proj = state_dict["patch_embed.proj.weight"]
    embed_dim, in_chans, patch, _ = proj.shape
    depth = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k)))
    num_tokens = state_dict["blocks.0.token_mix.op.weight"].shape[0]
    side = math.isqrt(num_tokens)
    config: dict[str, Any] = {"embed_dim": embed_dim, "in_chans": in_chans, "patch_size": patch, "depth": depth}
    if side * side == num_tokens:
        config["img_size"] = side * patch
    config["num_classes"] = state_dict["head.weight"].shape[0] if "head.weight" in state_dict else 0
    hidden = state_dict["blocks.0.channel_mix.op.fc1.weight"].shape[0]
    config["mlp_ratio"] = hidden / embed_dim
    return config


def _describe_tokens(n: int, patch: int) -> str:
    side = math.isqrt(n)
    if side * side == n:
        return f"{n} tokens (a {side}x{side} grid: {side * patch}x{side * patch} px at patch {patch})"
    return f"{n} tokens"


def _shape_problem(key: str, expected: torch.Size, got: torch.Size, patch: int) -> str:
    """One readable line for a tensor whose shape differs between the model and the checkpoint.

    Block indices are written as ``*`` so the same mismatch in every block reads as one line.
    """
    key = _BLOCK_INDEX.sub("blocks.*.", key)
    if key in _HEAD_KEYS and got[0] != expected[0]:
        return (
            f"head: the checkpoint's head has {got[0]} classes, the model's {expected[0]}; pass "
            f"num_classes={got[0]} to keep it, or fresh_head=True to fine-tune a new head"
        )
    if key.startswith("blocks.*.token_mix.op."):
        return (
            f"blocks.*.token_mix.op: the checkpoint mixes {_describe_tokens(got[0], patch)} but the model mixes "
            f"{_describe_tokens(expected[0], patch)}; build the model with the checkpoint's img_size/patch_size"
        )
    if key == "patch_embed.proj.weight" and len(got) == len(expected) == 4:
        return (
            f"{key}: checkpoint has width {got[0]}, {got[1]} input channels and patch {got[-1]}; the model has "
            f"width {expected[0]}, {expected[1]} input channels and patch {expected[-1]}; pick the matching preset"
        )
    return f"{key}: checkpoint shape {tuple(got)} != model shape {tuple(expected)}{_GENERIC_HINT}"


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, fresh_head: bool = False) -> None:
    """Copy ``state_dict`` (our layout) into ``model``; every mismatch is reported at once in one error.

    With ``fresh_head=True`` the checkpoint's classifier is ignored and the model keeps its freshly initialised
    head (fine-tuning on another number of classes). Without it, a head of another size is an error. A model
    without a head (``num_classes=0``, features only) ignores the checkpoint's head. A ``torch.compile``d or
    DDP-wrapped model is loaded through its inner module.

    Raises:
        CheckpointError: Listing every missing and unexpected key and every shape mismatch, with the fix.
    """
    model = _unwrap_module(model)
    own = model.state_dict()
    incoming = dict(state_dict)
    # A model built without a head (num_classes=0) asks for features: the checkpoint's classifier has no place.
    if fresh_head or not any(k in own for k in _HEAD_KEYS):
        for key in _HEAD_KEYS:
            incoming.pop(key, None)
    problems: list[str] = []
    missing = sorted(k for k in own if k not in incoming and not (fresh_head and k in _HEAD_KEYS))
    unexpected = sorted(k for k in incoming if k not in own)
    own_depth = sum(1 for k in own if k.endswith("token_mix.op.weight"))
    ckpt_depth = sum(1 for k in incoming if k.endswith("token_mix.op.weight"))
    if own_depth != ckpt_depth and ckpt_depth:
        problems.append(
            f"depth: the checkpoint has {ckpt_depth} blocks, the model {own_depth}; pick the matching preset"
        )
    head_missing = [k for k in missing if k in _HEAD_KEYS]
    if head_missing and len(head_missing) == len(missing):
        problems.append(
            "the checkpoint has no classifier head (a DINO or feature checkpoint?); build the model with "
            "num_classes=0 for features, or pass fresh_head=True to train a new head"
        )
        missing = []
    if missing:
        problems.append(
            f"missing keys ({len(missing)}): {', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}"
        )
    if unexpected:
        problems.append(
            f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:12])}{' ...' if len(unexpected) > 12 else ''}"
        )
    shapes: list[str] = []
    patch = own["patch_embed.proj.weight"].shape[-1] if "patch_embed.proj.weight" in own else 0
    for key, value in incoming.items():
        if key not in own or own[key].shape == value.shape:
            continue
        problem = _shape_problem(key, own[key].shape, value.shape, patch)
        if problem not in shapes:
            shapes.append(problem)
    # A width change resizes every tensor: name the first few, count the rest.
    generic = [p for p in shapes if p.endswith(_GENERIC_HINT)]
    if len(generic) > _MAX_GENERIC:
        shown = set(generic[:_MAX_GENERIC])
        shapes = [p for p in shapes if p in shown or not p.endswith(_GENERIC_HINT)]
        shapes.append(f"... and {len(generic) - _MAX_GENERIC} more tensors of another shape")
    problems += shapes
    if problems:
        raise CheckpointError("checkpoint does not fit the model:\n  - " + "\n  - ".join(problems))
    model.load_state_dict(incoming, strict=not fresh_head)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_model(model: nn.Module, path: str | os.PathLike, *, layout: str = "resmlp") -> Path:
    """Save ``model`` atomically.

    ``layout="resmlp"`` writes our format (weights plus config: ``create_model(name, checkpoint=...)`` rebuilds
    the saved configuration, image size and classes included); ``"timm"`` and ``"deit"`` write a raw state dict
    that timm's ``resmlp_*_224`` or the official deit ``resmlp_*`` load with ``load_state_dict`` directly.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    model = _unwrap_module(model)
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if layout == "resmlp":
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError("save_model needs a model with a .config (a resmlp.ResMLP)")
        return atomic_save({OUR_FORMAT_KEY: OUR_FORMAT_VERSION, "config": config.to_dict(), "model": state_dict}, path)
    config = getattr(model, "config", None)
    if config is not None and not getattr(config, "is_released_architecture", True):
        raise ValueError(
            f"the {layout} layout holds only the released ResMLP architecture; this model has token_mixer="
            f"{config.token_mixer!r}, norm={config.norm!r}, act={config.act!r}, global_pool={config.global_pool!r}; "
            "save it with layout='resmlp' (our format, which records the variant)"
        )
    return atomic_save(convert(state_dict, "resmlp", layout), path)


def _unwrap_module(model: nn.Module) -> nn.Module:
    """The plain model inside ``torch.compile`` (``_orig_mod``) and DDP/DataParallel (``module``) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner
