"""resmlp: the ResMLP block library (Touvron et al., arXiv 2105.03404).

Public API: ``create_model``, ``list_models``, ``get_config``, ``ResMLP``, ``ResMLPConfig``, ``save_model``, ``fuse``,
the layers in ``resmlp.layers`` and the CPU fast path's switch in ``resmlp.fast``. Depends on torch only; with timm
installed, every preset is also registered as a timm model.
"""

from .checkpoint import CheckpointError, read_checkpoint, save_model
from .config import ResMLPConfig, drop_path_rates, layerscale_init_for_depth
from .factory import create_model
from .fast import fuse
from .model import ResMLP
from .registry import get_config, list_models, register_config
from .zoo import list_pretrained

__version__ = "0.1.0"

try:  # Every preset is also a timm model (timm.create_model("resmlp_s12")) when timm is installed.
    import timm  # noqa: F401
except ImportError:  # pragma: no cover - the block library itself needs torch only
    pass
else:
    from . import timm_models  # noqa: F401

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
    "list_pretrained",
    "read_checkpoint",
    "register_config",
    "save_model",
]
