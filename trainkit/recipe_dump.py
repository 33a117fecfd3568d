"""Serialise a resolved recipe: plain dicts for YAML/JSON, flat scalars for TensorBoard, and ``config.yaml``.

``save_resolved_config(recipe, output_dir)`` writes what ``trainkit.recipe.load_recipe`` reads back unchanged, so
a run can always be repeated from its own output directory::

    save_resolved_config(recipe, "outputs/run1")                  # outputs/run1/config.yaml
    load_recipe(type(recipe), "outputs/run1/config.yaml") == recipe  # True
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .durable import write_text_atomic
from .yaml12 import yaml_load


def to_plain(value: Any) -> Any:
    """Dataclass tree -> plain dicts/lists/scalars (tuples become lists, paths strings), for YAML and JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def flatten(recipe: Any) -> dict[str, bool | int | float | str]:
    """``{"optim.lr": 0.005, ...}`` with scalar values only (TensorBoard hparams accept nothing else)."""
    flat: dict[str, bool | int | float | str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        elif isinstance(node, (bool, int, float, str)):
            flat[prefix] = node
        else:
            flat[prefix] = "null" if node is None else str(node)

    walk(to_plain(recipe), "")
    return flat


def save_resolved_config(recipe: Any, output_dir: str | os.PathLike) -> Path:
    """Write the resolved recipe to ``output_dir/config.yaml`` atomically; ``load_recipe`` reads it back as is.

    Call it before the first step. Concurrent calls from several processes are harmless (each writes a private
    temporary file and renames it over the same content).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    text = "# Resolved recipe of this run (defaults < recipe file < command line), written before step 0.\n"
    text += yaml.safe_dump(to_plain(recipe), sort_keys=False, default_flow_style=None)
    # NaN never equals itself; anything else that does not read back is a bug worth stopping for.
    if yaml_load(text) != to_plain(recipe) and "nan" not in text:
        raise RuntimeError(f"resolved config does not read back identically:\n{text}")
    target = write_text_atomic(output_dir / "config.yaml", text)
    return target
