"""Find the model weights inside the containers that training scripts write.

Handles raw state dicts (official deit files), ``{"model": ...}`` (deit training checkpoints), ``{"state_dict":
...}``, DINO checkpoints (``{"teacher": ..., "student": ...}`` with ``module.`` and ``backbone.`` prefixes) and
this library's own format (``{"resmlp_format": 1, "config": ..., "model": ...}``).
"""

from __future__ import annotations

from typing import Any

import torch

from .safe_load import CheckpointError

OUR_FORMAT_KEY = "resmlp_format"
OUR_FORMAT_VERSION = 1
# Wrapper keys in the order they are tried; DINO evaluates the teacher.
_WRAPPERS = ("model", "state_dict", "model_state", "teacher", "student", "model_ema")
# Prefixes added by DDP, torch.compile and DINO's MultiCropWrapper.
_PREFIXES = ("module.", "_orig_mod.", "backbone.")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes; if a ``backbone.`` part exists, keep only it (drops a DINO projection head)."""
    changed = True
    while changed:
        changed = False
        for prefix in ("module.", "_orig_mod."):
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    if any(k.startswith("backbone.") for k in state_dict):
        state_dict = {k[len("backbone.") :]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    return state_dict


def unwrap(obj: Any, *, key: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Return ``(state_dict, config_dict_or_None)`` from a loaded checkpoint object.

    Args:
        obj: What ``safe_load`` returned.
        key: Force a wrapper key (for example ``"student"`` for a DINO checkpoint); default: try the usual ones.
    """
    if isinstance(obj, dict) and obj.get(OUR_FORMAT_KEY) is not None:
        if obj[OUR_FORMAT_KEY] != OUR_FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint is resmlp format {obj[OUR_FORMAT_KEY]}, this version reads {OUR_FORMAT_VERSION}; "
                "upgrade the resmlp package"
            )
        if key not in (None, "model"):  # one model per file: a key naming anything else is refused, not ignored
            raise CheckpointError(
                f"checkpoint has no entry {key!r}: it is in resmlp's own format, which holds one model (written by "
                "save_model; a DINO run's model.pth is its teacher backbone); load it without checkpoint_key"
            )
        return _strip_prefixes(dict(obj["model"])), dict(obj["config"])
    if key is not None:
        if _is_state_dict(obj) and key not in obj:
            raise CheckpointError(
                f"checkpoint has no entry {key!r}: it is a plain state dict ({len(obj)} tensors, no container "
                "entries); load it without checkpoint_key"
            )
        if not isinstance(obj, dict) or key not in obj:
            found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"checkpoint has no entry {key!r}; it has {found}")
        obj = obj[key]
    if _is_state_dict(obj):
        return _strip_prefixes(obj), None
    if isinstance(obj, dict):
        for name in _WRAPPERS:
            if name in obj and _is_state_dict(obj[name]):
                return _strip_prefixes(obj[name]), None
    found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(
        f"no model weights found in the checkpoint (top-level entries: {found}); expected a state dict, or one "
        f"under one of {list(_WRAPPERS)}"
    )
