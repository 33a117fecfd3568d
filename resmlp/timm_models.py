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
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg

from .checkpoint import read_checkpoint
from .model import ResMLP
from .registry import get_config, list_models, pretrained_cfg
from .zoo import DEFAULT_BASE_URL, fetch, tags_of, weights_for


def _default_cfgs() -> dict:
    """One pretrained_cfg per released tag (the first is the preset's default), one bare cfg per other preset."""
    cfgs = {}
    for name in list_models():
        for w in tags_of(name):
            cfg = pretrained_cfg(name, url=DEFAULT_BASE_URL + w.file)
            cfgs[w.name] = dict(cfg, num_classes=0) if w.backbone else cfg
        if not tags_of(name):
            cfgs[name] = pretrained_cfg(name)
    return cfgs


# Read by timm's register_model when each entry point below is registered (timm's convention).
default_cfgs = generate_default_cfgs(_default_cfgs())


def _build(name: str, device=None, dtype=None, **overrides) -> ResMLP:
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = ResMLP(get_config(name, **overrides))
    return model if dtype is None else model.to(dtype=dtype)


def create(
    name: str, pretrained: bool = False, pretrained_cfg=None, pretrained_cfg_overlay=None, **kwargs
) -> torch.nn.Module:
    """Build preset ``name`` through timm's builder (what ``timm.create_model`` calls).

    With ``pretrained=True`` the weights come from our zoo (torch.hub's cache, ``RESMLP_WEIGHTS_URL``, one clear
    error when offline) and timm's loader then adapts them as for any timm model (``in_chans``, a new
    ``num_classes``).
    """
    kwargs.pop("cache_dir", None)  # our downloads use torch.hub's cache, as documented
    out_indices = kwargs.pop("out_indices", 3)
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=pretrained_cfg_overlay)
        weights = weights_for(f"{name}.{cfg.tag}" if cfg.tag else name)
        state_dict, _ = read_checkpoint(fetch(weights))
        if weights.backbone:  # DINO files carry no trained classifier
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
        pretrained_cfg_overlay = dict(pretrained_cfg_overlay or {}, state_dict=state_dict)
    model = build_model_with_cfg(
        lambda **kw: _build(name, **kw),
        name,
        pretrained=pretrained,
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )
    for holder in (model, getattr(model, "model", None)):  # features_only wraps the model
        if holder is not None and isinstance(getattr(holder, "pretrained_cfg", None), dict):
            holder.pretrained_cfg.pop("state_dict", None)  # the weights are in the model, not its config
    return model


def _entrypoint(name: str):
    def entrypoint(pretrained: bool = False, **kwargs) -> torch.nn.Module:
        return create(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"ResMLP preset {name!r} (see resmlp.get_config({name!r}))."
    return register_model(entrypoint)


for _name in list_models():
    globals()[_name] = _entrypoint(_name)
