"""Safe loading of checkpoint files: ``weights_only=True`` with an explicit allow-list, never a silent fallback."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path
from typing import Any

import torch

# What published ResMLP, deit and dino checkpoints legitimately contain besides tensors and plain containers:
# the argparse Namespace of the training run (deit and dino save ``args``) and numpy scalars (metrics, seeds).
_ALLOWED: list[Any] = [argparse.Namespace]
try:  # numpy is optional for the library; when present its scalar types may appear in training checkpoints.
    import numpy as np

    _ALLOWED += [np.dtype, np.ndarray]
    _ALLOWED += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
    try:
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[attr-defined]
    except ImportError:  # numpy >= 2 moved them
        from numpy._core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    _ALLOWED += [scalar, _reconstruct]
except ImportError:  # pragma: no cover - numpy is installed with torch in practice
    pass


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the problem and the fix."""


def allow_globals(*types: Any) -> None:
    """Extend the allow-list for files you trust that contain other picklable types (explicit opt-in)."""
    _ALLOWED.extend(types)


def allowed_globals() -> list[Any]:
    """The current allow-list (for ``torch.serialization.safe_globals``)."""
    return list(_ALLOWED)


def safe_load(path: str | os.PathLike) -> Any:
    """Load a ``.pth``/``.pt``/``.bin`` file with ``weights_only=True``, or a ``.safetensors`` file, on CPU."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file inside it")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it contains objects outside the safe allow-list ({err}). "
            "If you trust this file, allow the named type with resmlp.checkpoint.allow_globals(TheType) "
            "and load again; resmlp never falls back to unsafe unpickling."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {err}. The file may be truncated or not a PyTorch checkpoint."
        ) from err
