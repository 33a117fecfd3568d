"""``--help`` text for a recipe tree: every section and key with its default and the first sentence of its doc.

The descriptions come from the ``Attributes:`` section of each dataclass's docstring, so the help, the docs and the
code say the same thing::

    print(describe_recipe(VisionRecipe))
    #   model.name = resmlp_s12          A resmlp preset (resmlp_s12 ...); see resmlp.list_models().
    #   ...
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from .recipe_dump import to_plain

_ATTRIBUTE = re.compile(r"^(\s*)([A-Za-z_][\w, ]*?):\s+(.*)$")


def attribute_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` parsed from the ``Attributes:`` section of ``cls``'s docstring."""
    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    lines = doc.split("Attributes:", 1)[1].splitlines()
    docs: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in lines:
        if not line.strip():
            continue
        match = _ATTRIBUTE.match(line)
        depth = len(line) - len(line.lstrip())
        if match and (indent is None or depth == indent):
            indent = depth
            names = [n.strip() for n in match.group(2).split(",")]
            for name in names:
                docs[name] = match.group(3).strip()
        elif indent is not None and depth > indent and names:
            for name in names:
                docs[name] += " " + line.strip()
        elif indent is not None and depth < indent:
            break
    return docs


def _first_sentence(text: str, limit: int = 90) -> str:
    """The first sentence of an attribute's description, without reST markup, cut at ``limit`` characters."""
    text = text.replace("``", "")
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z(])", text, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


def _value(value: Any) -> str:
    plain = to_plain(value)
    if plain is None:
        return "null"
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, str):
        return plain if plain else '""'
    return str(plain)


def describe_recipe(root: type | Any) -> str:
    """Sections and keys of the recipe tree ``root`` (a class or an instance) with defaults and descriptions."""
    recipe = root() if isinstance(root, type) else root
    rows: list[tuple[str, str, str]] = []
    for section in dataclasses.fields(recipe):
        value = getattr(recipe, section.name)
        if not dataclasses.is_dataclass(value):
            rows.append((section.name, _value(value), ""))
            continue
        docs = attribute_docs(type(value))
        for item in dataclasses.fields(value):
            key = f"{section.name}.{item.name}"
            rows.append((key, _value(getattr(value, item.name)), _first_sentence(docs.get(item.name, ""))))
    width = min(max(len(f"{k} = {v}") for k, v, _ in rows) + 2, 48)
    lines = []
    current = None
    for key, value, doc in rows:
        section = key.split(".", 1)[0]
        if section != current:
            current = section
            lines.append(f"{section}:")
        left = f"  {key} = {value}"
        lines.append(f"{left:<{width}} {doc}".rstrip() if len(left) < width else f"{left}\n{'':<{width}} {doc}")
    return "\n".join(lines)
