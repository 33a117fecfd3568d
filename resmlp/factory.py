"""``create_model``: a preset by name, optionally with released weights (by tag) or any supported checkpoint."""

from __future__ import annotations

import dataclasses
import os

from .checkpoint import CheckpointError, load_weights, read_checkpoint
from .config import ResMLPConfig
from .model import ResMLP
from .registry import get_config, pretrained_cfg
from .zoo import DEFAULT_BASE_URL, find, is_tag, resolve_checkpoint, split_name, weights_for

# Fields that define the architecture of a preset; a checkpoint of another architecture is refused.
_STRUCTURAL = ("embed_dim", "depth", "patch_size", "mlp_ratio")


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    fresh_head: bool = False,
    checkpoint_key: str | None = None,
    **overrides,
) -> ResMLP:
    """Build the preset ``name`` (see ``list_models()``), optionally loading weights.

    Args:
        name: Preset name, e.g. ``"resmlp_s12"``, optionally with a weight tag: ``"resmlp_s12.fb_distilled_in1k"``
            (see ``resmlp.list_pretrained()``).
        pretrained: Load the released weights of the tag (a bare preset name takes its first tag, ``fb_in1k``),
            downloaded once into torch.hub's cache (``RESMLP_WEIGHTS_URL`` overrides the base URL). DINO weights
            load as a backbone (``num_classes=0``) unless ``num_classes`` is given (then with a fresh head).
        checkpoint: A weight tag (``"resmlp_s12.fb_in1k"``), an official deit ResMLP file (raw or under
            ``"model"``), a DINO checkpoint (the teacher is read; ``checkpoint_key="student"`` for the student), a
            timm ``resmlp_*`` state dict, or a file written by ``resmlp.save_model``. Layouts are converted on the fly.
        num_classes: Classifier outputs. Default: the preset's, or the checkpoint's head size (0, features
            only, when the checkpoint has no head).
        fresh_head: Ignore the checkpoint's head and keep a freshly initialised one (fine-tuning).
        checkpoint_key: Entry to read in a container checkpoint (``"teacher"``, ``"student"``, ``"model_ema"``).
        **overrides: Any other ``ResMLPConfig`` field (``img_size``, ``drop_path_rate``, ``in_chans`` ...).

    Raises:
        KeyError: Unknown preset name.
        TypeError: Unknown override.
        FileNotFoundError: ``checkpoint`` does not exist.
        CheckpointError: The file cannot be read safely, holds no ResMLP weights, or does not fit the model (every
            missing/unexpected key and shape mismatch is listed with the fix).
    """
    preset, tag = split_name(name)
    weights = None
    if pretrained:
        if checkpoint is not None:
            raise ValueError("pass pretrained=True (released weights) or checkpoint=..., not both")
        weights = weights_for(name)
        checkpoint = weights.name
    elif tag is not None:
        weights_for(name)  # an unknown tag is an error even without pretrained=True, as in timm
    elif checkpoint is not None and is_tag(checkpoint):
        weights = weights_for(str(checkpoint))
    if weights is not None and weights.backbone:
        # DINO weights carry no trained classifier: features, or a fresh head when classes are asked for.
        fresh_head = fresh_head or (num_classes is not None and num_classes > 0)
        num_classes = 0 if num_classes is None else num_classes
    name = preset
    if checkpoint is not None:
        checkpoint = resolve_checkpoint(checkpoint)
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    requested = get_config(name, **overrides)  # also rejects unknown override names
    if checkpoint is None:
        return _with_cfg(ResMLP(requested), name, tag)
    state_dict, stored = read_checkpoint(checkpoint, key=checkpoint_key)
    if stored is not None:
        # Our own format carries its config: use it, with the caller's overrides on top.
        saved = ResMLPConfig.from_dict(stored)
        differs = [
            f"{f}: {getattr(saved, f)} in the file vs {getattr(requested, f)}"
            for f in _STRUCTURAL
            if getattr(saved, f) != getattr(requested, f)
        ]
        if differs:
            raise CheckpointError(
                f"{checkpoint} holds another architecture than {name!r} ({'; '.join(differs)}); "
                "pass the preset (and overrides) the model was saved with"
            )
        config = dataclasses.replace(saved, **overrides)
    elif num_classes is None and not fresh_head:
        # Official, DINO and timm files carry no config: the head size comes from the weights (0 if none).
        head = state_dict.get("head.weight")
        config = dataclasses.replace(requested, num_classes=0 if head is None else head.shape[0])
    else:
        config = requested
    model = ResMLP(config)
    try:
        load_weights(model, state_dict, fresh_head=fresh_head)
    except CheckpointError as err:
        raise CheckpointError(f"{checkpoint} -> {name}: {err}") from None
    return _with_cfg(model, name, weights.tag if weights is not None else tag)


def _with_cfg(model: ResMLP, name: str, tag: str | None = None) -> ResMLP:
    """Attach timm's ``pretrained_cfg`` (and its old name ``default_cfg``), as ``timm.create_model`` does."""
    weights = find(f"{name}.{tag}" if tag else name)
    url = DEFAULT_BASE_URL + weights.file if weights is not None else ""
    cfg = dict(pretrained_cfg(name, model.config, url=url), architecture=name, tag=weights.tag if weights else "")
    model.pretrained_cfg = model.default_cfg = cfg
    return model
