"""A YAML loader with YAML 1.2 core-schema scalars, for recipes and command-line values.

PyYAML implements YAML 1.1, where ``off``/``no``/``yes`` are booleans, ``5e-3`` is the *string* "5e-3" (1.1 floats
need a dot) and ``08`` is a broken octal. In a recipe those silently change meaning (``resume: off`` would become
``False``; ``lr: 5e-3`` would fail as text). This loader resolves only ``true``/``false`` as booleans, decimal
and ``0x`` integers, floats with or without a dot (``5e-3``, ``.inf``, ``.nan``), and keeps dates as strings::

    yaml_load("lr: 5e-3\\nresume: off")   # {'lr': 0.005, 'resume': 'off'}
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_REPLACED = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}


class YAML12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the YAML 1.2 core schema for booleans, integers and floats."""


YAML12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YAML12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
# An integer is tried before a float, so "3" stays an int and "3.0" / "3e0" become floats.
YAML12Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
YAML12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    return int(text, 16) if text.startswith("0x") else int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


YAML12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
YAML12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def yaml_load(text: str) -> Any:
    """Parse one YAML document with YAML 1.2 scalars (see the module docstring)."""
    return yaml.load(text, Loader=YAML12Loader)
