"""Checkpoint interop: official deit files, DINO checkpoints, timm state dicts and our own format."""

from .containers import unwrap
from .io import atomic_save, infer_config, load_weights, read_checkpoint, save_model
from .layouts import LAYOUTS, convert, detect_layout, to_resmlp
from .safe_load import CheckpointError, allow_globals, safe_load

__all__ = [
    "LAYOUTS",
    "CheckpointError",
    "allow_globals",
    "atomic_save",
    "convert",
    "detect_layout",
    "infer_config",
    "load_weights",
    "read_checkpoint",
    "safe_load",
    "save_model",
    "to_resmlp",
    "unwrap",
]
