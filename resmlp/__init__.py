"""resmlp: the ResMLP block library (Touvron et al., arXiv 2105.03404).

Public API: ``create_model``, ``list_models``, ``get_config``, ``ResMLP``, ``ResMLPConfig``, ``save_model`` and
the layers in ``resmlp.layers``. Depends on torch only.
"""

from .checkpoint import CheckpointError, read_checkpoint, save_model
from .config import ResMLPConfig, drop_path_rates, layerscale_init_for_depth
from .factory import create_model
from .fuse import fuse
from .model import ResMLP
from .registry import get_config, list_models, register_config

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ResMLP",
    "ResMLPConfig",
    "create_model",
    "drop_path_rates",
    "fuse",
    "get_config",
    "layerscale_init_for_depth",
    "list_models",
    "read_checkpoint",
    "register_config",
    "save_model",
]
