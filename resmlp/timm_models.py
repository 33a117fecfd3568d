"""Every ResMLP preset as a timm model: after ``import resmlp``, ``timm.create_model("resmlp_s12")`` builds ours.

Our names (``resmlp_s12`` ...) do not collide with timm's own ResMLP (``resmlp_12_224`` ...). Models go through
timm's ``build_model_with_cfg``, so ``pretrained_cfg``, ``pretrained_cfg_overlay``, ``features_only`` /
``out_indices`` (timm's ``FeatureGetterNet`` over ``forward_intermediates``), ``global_pool``, ``drop_rate``,
``device`` and ``dtype`` mean what they mean for timm's models. Imported by ``resmlp/__init__.py`` only when timm
is installed: the block library itself needs torch only.
"""

from __future__ import annotations

import contextlib

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .model import ResMLP
from .registry import get_config, list_models, pretrained_cfg

# Read by timm's register_model when each entry point below is registered (timm's convention).
default_cfgs = generate_default_cfgs({name: pretrained_cfg(name) for name in list_models()})


def _build(name: str, device=None, dtype=None, **overrides) -> ResMLP:
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = ResMLP(get_config(name, **overrides))
    return model if dtype is None else model.to(dtype=dtype)


def create(name: str, pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """Build preset ``name`` through timm's builder (what ``timm.create_model`` calls)."""
    if pretrained:
        raise ValueError(f"no pretrained weights are registered for {name!r}; use pretrained=False")
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(
        lambda **kw: _build(name, **kw),
        name,
        pretrained=False,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


def _entrypoint(name: str):
    def entrypoint(pretrained: bool = False, **kwargs) -> torch.nn.Module:
        return create(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"ResMLP preset {name!r} (see resmlp.get_config({name!r}))."
    return register_model(entrypoint)


for _name in list_models():
    globals()[_name] = _entrypoint(_name)
