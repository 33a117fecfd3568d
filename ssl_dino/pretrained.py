"""Load a frozen backbone for evaluation from any checkpoint the library reads, or at random initialisation.

ResMLP checkpoints of every supported layout go through ``resmlp.read_checkpoint``: our own files (with their
config), official deit files, timm state dicts, and DINO checkpoints (``teacher`` by default, ``student`` on
request; ``module.``/``backbone.`` prefixes stripped, the projection head dropped), including the official
``resmlp_12_dino.pth`` / ``resmlp_24_dino.pth``. Without a stored config the architecture is ``--arch`` or is
inferred from the tensor shapes. timm backbones load from a state dict with the same container and prefix rules.
"""

from __future__ import annotations

import dataclasses
import os

from torch import nn

import resmlp
from resmlp.checkpoint import CheckpointError, infer_config, load_weights, safe_load, unwrap

from .backbone import build_backbone

_TIMM_CLASSIFIERS = ("head.", "fc.", "classifier.", "head_dist.")


def load_backbone(
    checkpoint: str | os.PathLike | None,
    *,
    arch: str | None = None,
    key: str | None = None,
    img_size: int | None = None,
) -> nn.Module:
    """A feature backbone (no classifier) in eval mode, with no gradients.

    Args:
        checkpoint: A checkpoint file; None builds ``arch`` at random initialisation (seed beforehand).
        arch: A resmlp preset or timm model name; needed for timm and for random init, optional for ResMLP files.
        key: The container entry to read (``"teacher"``, ``"student"``, ``"model_ema"``...); default: the teacher
            of a DINO checkpoint, the model otherwise.
        img_size: Input size for random init or timm (None: the preset's or timm's default); ResMLP checkpoints
            fix their own.
    """
    if checkpoint is None:
        if arch is None:
            raise ValueError("pass a checkpoint, or an architecture (--arch) to evaluate at random initialisation")
        model = build_backbone(arch, img_size=img_size)
    elif arch is not None and arch.removeprefix("timm:") not in resmlp.list_models():
        model = build_backbone(arch, img_size=img_size)
        _load_timm(model, checkpoint, key)
    else:
        model = _load_resmlp(checkpoint, arch, key, img_size)
    model.requires_grad_(False)
    return model.eval()


def _load_resmlp(checkpoint: str | os.PathLike, arch: str | None, key: str | None, img_size: int | None) -> nn.Module:
    if arch is not None:
        overrides = {"img_size": img_size} if img_size else {}
        return resmlp.create_model(
            arch, checkpoint=checkpoint, checkpoint_key=key, num_classes=0, fresh_head=True, **overrides
        )
    state_dict, stored = resmlp.read_checkpoint(checkpoint, key=key)
    if stored is not None:
        config = resmlp.ResMLPConfig.from_dict(stored)
    else:
        config = resmlp.ResMLPConfig(**infer_config(state_dict))
    model = resmlp.ResMLP(dataclasses.replace(config, num_classes=0))
    load_weights(model, state_dict, fresh_head=True)
    return model


def _load_timm(model: nn.Module, checkpoint: str | os.PathLike, key: str | None) -> None:
    state_dict, _ = unwrap(safe_load(checkpoint), key=key)
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(_TIMM_CLASSIFIERS)}
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(_TIMM_CLASSIFIERS)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{checkpoint} does not fit {type(model).__name__}: missing {missing[:8]}, unexpected "
            f"{result.unexpected_keys[:8]}; pass the --arch it was trained with"
        )
