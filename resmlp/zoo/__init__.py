"""The model zoo: the official ResMLP weights by name (``resmlp_s12.fb_in1k`` ...), cached as torch.hub does.

``create_model("resmlp_s12.fb_distilled_in1k", pretrained=True)`` builds the preset and loads that file;
``resolve_checkpoint`` turns a path or a tag into a local file for every command that takes a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

from .download import BASE_URL_ENV, WeightsUnavailable, cache_dir, fetch, url_of
from .weights import DEFAULT_BASE_URL, RELEASED, Weights, find, list_pretrained, tags_of


def split_name(name: str) -> tuple[str, str | None]:
    """``"resmlp_s12.fb_in1k"`` -> ``("resmlp_s12", "fb_in1k")``; a bare preset has no tag."""
    preset, _, tag = name.partition(".")
    return preset, tag or None


def weights_for(name: str) -> Weights:
    """The released weights called ``name`` (a bare preset means its default tag); an unknown one is refused."""
    weights = find(name)
    if weights is None:
        preset, _ = split_name(name)
        known = ", ".join(w.name for w in RELEASED)
        scope = (
            f"{preset} has none released"
            if not tags_of(preset)
            else f"{preset} has {', '.join(w.tag for w in tags_of(preset))}"
        )
        raise WeightsUnavailable(f"no released weights named {name!r} ({scope}); known: {known}")
    return weights


def is_tag(value: str | os.PathLike) -> bool:
    """Whether ``value`` names released weights (``preset.tag``) rather than a file."""
    return isinstance(value, str) and find(value) is not None and "." in value and not Path(value).exists()


def resolve_checkpoint(value: str | os.PathLike) -> Path:
    """A local file for ``value``: the path itself, or the cached (downloaded if needed) file of a weight tag."""
    if is_tag(value):
        return fetch(weights_for(str(value)))
    return Path(value)


__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "RELEASED",
    "Weights",
    "WeightsUnavailable",
    "cache_dir",
    "fetch",
    "find",
    "is_tag",
    "list_pretrained",
    "resolve_checkpoint",
    "split_name",
    "tags_of",
    "url_of",
    "weights_for",
]
