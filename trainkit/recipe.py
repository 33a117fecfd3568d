"""YAML recipes mapped 1:1 onto typed, frozen dataclass trees, with ``section.key=value`` command-line overrides.

Precedence: the dataclass defaults (or a preset instance) < the YAML file < the command line. Every key is checked:
an unknown key or a wrongly typed value raises ``RecipeError`` naming the full dotted key, where it came from, and
the closest valid key. Works for any tree of dataclasses; the task packages define their own roots::

    from trainkit.recipe import parse_command_line, save_resolved_config

    cli = parse_command_line(VisionRecipe, ["--recipe", "recipes/vision/resmlp_digits.yaml", "optim.lr=1e-3"])
    cli.recipe.optim.lr          # 0.001
    save_resolved_config(cli.recipe, cli.output_dir)   # OUTPUT_DIR/config.yaml, reloadable with load_recipe

Values are read with YAML 1.2 rules (``off``/``yes`` stay strings, ``5e-3`` is a float), so ``resume: off`` and
``lr: 5e-3`` mean what they say. Field types understood: bool, int, float (ints accepted), str, Path, Literal,
Optional/Union, tuple (fixed or ``...``), list, dict and nested dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from resmlp.cli import UsageError, add_debug_flag

from .recipe_dump import flatten, save_resolved_config, to_plain
from .recipe_help import describe_recipe
from .yaml12 import yaml_load

__all__ = [
    "CommandLine",
    "RecipeError",
    "build",
    "flatten",
    "load_recipe",
    "parse_command_line",
    "parse_overrides",
    "save_resolved_config",
    "to_plain",
]

T = TypeVar("T")


class RecipeError(UsageError, ValueError):
    """A recipe (YAML file or command-line override) that does not fit the recipe's dataclass tree (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class CommandLine:
    """What ``parse_command_line`` returns: the resolved recipe and where the run writes."""

    recipe: Any
    output_dir: Path
    recipe_path: Path | None
    overrides: tuple[str, ...]


def _suggest(key: str, choices: Sequence[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    return f"{hint} (valid keys here: {', '.join(choices)})"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, key: str, base: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (lists to tuples, ints to floats, dicts to
    dataclasses). Raises ``_Mismatch`` with a reason; the caller adds the key and source."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch(f"null is not allowed, expected {_type_name(tp)}")
        options = [a for a in args if a is not type(None)]
        reasons = []
        for option in options:
            try:
                return _coerce(option, value, key, base)
            except _Mismatch as err:
                reasons.append(str(err))
        if len(options) == 1:
            raise _Mismatch(f"{reasons[0]} (or null)")
        raise _Mismatch(f"expected {_type_name(tp)}, got {value!r} ({'; '.join(reasons)})")
    if origin is typing.Literal:
        # Compare types too: YAML's true must not match a Literal[1], nor 1 a Literal[True].
        if any(value == a and type(value) is type(a) for a in args):
            return value
        names = [str(a) for a in args]
        close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _Mismatch(f"{value!r} is not one of {list(args)}{hint}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch(f"expected a mapping of {tp.__name__} keys, got {value!r}")
        return _build(tp, value, prefix=key, base=base if isinstance(base, tp) else None)
    if value is None:
        raise _Mismatch(f"null is not allowed, expected {_type_name(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch(f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch(f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(f"expected a string, got {value!r} (quote it to pass it as text)")
    if tp in (Path, os.PathLike):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise _Mismatch(f"expected a path, got {value!r}")
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise _Mismatch(f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch(f"expected a list of {len(args)} items, got {len(value)}: {list(value)!r}")
            types_ = list(args)
        else:
            types_ = [args[0] if args else Any] * len(value)
        items = []
        for i, (item_type, item) in enumerate(zip(types_, value)):
            try:
                items.append(_coerce(item_type, item, f"{key}[{i}]", None))
            except _Mismatch as err:
                raise _Mismatch(f"item {i}: {err}") from None
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch(f"expected a mapping, got {value!r}")
        key_type, value_type = args if args else (Any, Any)
        return {
            _coerce(key_type, k, f"{key}.{k}", None): _coerce(value_type, v, f"{key}.{k}", None)
            for k, v in value.items()
        }
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch(f"expected {_type_name(tp)}, got {value!r}")


class _Mismatch(Exception):
    """Internal: a value that does not fit its annotation (re-raised as RecipeError with the key)."""


def build(cls: type[T], data: Mapping[str, Any], *, base: T | None = None, source: str = "") -> T:
    """Build the dataclass ``cls`` from a (nested) mapping, on top of ``base`` (or the class defaults).

    Args:
        cls: Root dataclass of the tree.
        data: Keys to set; nested mappings address nested dataclass sections.
        base: Instance whose values stand for keys absent from ``data``.
        source: Where ``data`` came from (a file name, "command line"); errors start with it.
    """
    try:
        return _build(cls, data, prefix="", base=base)
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}" if source else str(err)) from None


def _build(cls: type[T], data: Mapping[str, Any], *, prefix: str, base: T | None) -> T:
    if not isinstance(data, Mapping):
        raise RecipeError(f"{prefix or 'recipe'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            removed = getattr(cls, "REMOVED_KEYS", {}).get(key)
            if removed:
                raise RecipeError(f"key {dotted!r} no longer exists: {removed}")
            hint = _suggest(str(key), list(fields), f"{prefix}." if prefix else "")
            raise RecipeError(f"unknown key {dotted!r}{hint}")
        current = getattr(base, key) if base is not None else _default(fields[key])
        try:
            kwargs[key] = _coerce(hints[key], value, dotted, current)
        except _Mismatch as err:
            raise RecipeError(f"{dotted}: {err}") from None
    if base is None:
        missing = [n for n, f in fields.items() if n not in kwargs and _default(f) is _MISSING]
        if missing:
            names = ", ".join(f"{prefix}.{n}" if prefix else n for n in missing)
            raise RecipeError(f"missing required key(s): {names}")
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, RecipeError):
            raise
        where = prefix or cls.__name__
        message = " ".join(str(err).split())
        raise RecipeError(message if message.startswith(f"{where}.") else f"{where}: {message}") from None


_MISSING = object()


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["optim.lr=1e-3", "run.max_steps=5"]`` into a nested mapping; values are read as YAML 1.2."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(f"override {item!r} is not of the form section.key=value (e.g. optim.lr=1e-3)")
        try:
            value = yaml_load(text) if text.strip() else ""
        except Exception as err:
            raise RecipeError(f"override {item!r}: the value is not valid YAML ({err})") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return nested


def load_recipe(root: type[T] | T, path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> T:
    """Resolve a recipe: ``root`` defaults (a class or a preset instance) < YAML file ``path`` < ``overrides``."""
    recipe = root() if isinstance(root, type) else root
    cls = type(recipe)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist; pass --recipe with a YAML file under recipes/")
        try:
            data = yaml_load(path.read_text()) or {}
        except Exception as err:
            raise RecipeError(f"{path}: not valid YAML ({err})") from None
        recipe = build(cls, data, base=recipe, source=str(path))
    if overrides:
        recipe = build(cls, parse_overrides(overrides), base=recipe, source="command line")
    return recipe


def parse_command_line(
    root: type[T] | T, argv: Sequence[str] | None = None, *, prog: str | None = None, description: str | None = None
) -> CommandLine:
    """Parse ``--recipe PATH --output-dir DIR section.key=value ...`` into a resolved recipe.

    Without ``--output-dir`` the run writes to ``outputs/<recipe file stem>`` (``outputs/default`` without a
    recipe). ``argv`` defaults to ``sys.argv[1:]``. ``--help`` lists every recipe section and key with its default.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or "Train from a YAML recipe with section.key=value overrides.",
        epilog="Recipe keys (set them in the YAML file or as section.key=value; defaults shown):\n"
        + describe_recipe(root),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipe", type=Path, default=None, help="YAML recipe file (see recipes/)")
    parser.add_argument("--output-dir", type=Path, default=None, help="where checkpoints, logs and config go")
    add_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=1e-3")
    args = parser.parse_intermixed_args(argv)  # overrides may come before and after the options
    recipe = load_recipe(root, args.recipe, args.overrides)
    output_dir = args.output_dir or Path("outputs") / (args.recipe.stem if args.recipe else "default")
    return CommandLine(recipe, output_dir, args.recipe, tuple(args.overrides))
