"""Safe loading of checkpoint files: ``weights_only=True`` with an explicit allow-list, never a silent fallback."""

from __future__ import annotations

import _compat_pickle
import argparse
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

# What published ResMLP, deit and dino checkpoints legitimately contain besides tensors and plain containers:
# the argparse Namespace of the training run (deit and dino save ``args``) and numpy scalars and arrays (metrics,
# seeds). Entries are objects or (object, "module.name") pairs for names that older library versions pickled.
_ALLOWED: list[Any] = [argparse.Namespace]
try:  # numpy is optional for the library; when present its scalar types may appear in training checkpoints.
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

    _ALLOWED += [np.dtype, np.ndarray, scalar, _reconstruct]
    _ALLOWED += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    # Files written under numpy 1.x name these numpy.core.multiarray.*; numpy 2 renamed the module.
    _ALLOWED += [(scalar, "numpy.core.multiarray.scalar"), (_reconstruct, "numpy.core.multiarray._reconstruct")]
except ImportError:  # pragma: no cover - numpy is installed with torch in practice
    pass


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the problem and the fix."""


def allow_globals(*types: Any) -> None:
    """Extend the allow-list for files you trust that contain other picklable types (explicit opt-in).

    Args:
        *types: Classes or functions, or ``(object, "module.qualified.name")`` pairs when the file names the
            object under another path (as ``torch.serialization.add_safe_globals`` accepts).
    """
    for item in types:
        target = item[0] if isinstance(item, tuple) else item
        if not callable(target):
            raise TypeError(f"allow_globals takes classes or functions, got {item!r}")
    _ALLOWED.extend(types)


def allowed_globals() -> list[Any]:
    """The current allow-list (for ``torch.serialization.safe_globals``)."""
    return list(_ALLOWED)


# torch's messages for a global outside the allow-list; the captured part names the refused type or function.
_REFUSED_GLOBAL = re.compile(r"(?:GLOBAL|unrecognized function|unsupported class) (\S+?)(?:\s|$)")
# A torch zip checkpoint starts with a zip header; a safetensors file with an 8-byte length and a JSON header.
_ZIP_MAGIC = b"PK\x03\x04"


def _looks_like_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[:4] != _ZIP_MAGIC and head[8:9] == b"{"


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:  # safetensors is optional for the block library itself
        raise CheckpointError(f"{path} is a safetensors file; install the safetensors package to read it") from err
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError for damaged files
        raise CheckpointError(f"cannot read safetensors file {path}: {err}. The file may be truncated.") from err


def safe_load(path: str | os.PathLike) -> Any:
    """Load a checkpoint file on CPU without executing code from it.

    ``.pth``/``.pt``/``.bin`` files go through ``torch.load(weights_only=True)`` with the allow-list above;
    ``.safetensors`` files (recognised by suffix or header) through safetensors.

    Raises:
        FileNotFoundError: The path does not exist.
        CheckpointError: A directory, a damaged or foreign file, or a pickle that needs a type outside the
            allow-list (the message names the type and the opt-in, ``resmlp.checkpoint.allow_globals``).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file inside it")
    if _looks_like_safetensors(path):
        return _load_safetensors(path)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _REFUSED_GLOBAL.search(str(err))
        if refused is None:
            raise _unreadable(path, err) from err
        # torch's own message suggests weights_only=False; ours names the one safe, explicit opt-in instead,
        # and never for a callable that runs code (exec, eval, os.system ...): no checkpoint needs one.
        name = refused.group(1).rstrip(".")
        if _runs_code(name):
            name = _python3_name(name)
            raise CheckpointError(
                f"refusing to load {path}: it pickles {name}, which runs code or commands when loaded. No "
                "checkpoint needs it: the file is malicious or not a checkpoint. Do not load it; get the weights "
                "from a trusted source. resmlp never falls back to unsafe unpickling."
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it pickles {name}, which is not on the allow-list of types that ResMLP, "
            f"deit and DINO checkpoints contain. Only if you trust this file and {name} is a plain data class, "
            f"allow that type explicitly with resmlp.checkpoint.allow_globals({name.rsplit('.', 1)[-1]}) and load "
            "again; resmlp never falls back to unsafe unpickling."
        ) from None
    except Exception as err:  # a damaged file surfaces as RuntimeError, EOFError, KeyError ... depending on where
        raise _unreadable(path, err) from err


# Modules whose globals execute code, start processes, import modules or build functions when a pickle calls them.
_CODE_RUNNING_MODULES = {
    "builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "pickle",
    "_pickle", "marshal", "code", "codeop", "types", "ctypes", "socket", "pty", "platform", "webbrowser", "operator",
    "functools", "timeit", "pdb", "bdb", "cProfile", "profile", "torch.hub", "torch.jit", "torch.package",
}  # fmt: skip


def _python3_name(name: str) -> str:
    """``module.name`` as Python 3 spells it: pickle protocol 2 writes ``commands.Popen`` for ``subprocess.Popen``,
    ``__builtin__.eval`` for ``builtins.eval`` (``_compat_pickle``); a bare name is a builtin."""
    module, _, attr = name.rpartition(".")
    module = module or "builtins"
    module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"


def _runs_code(name: str) -> bool:
    """Whether the global ``module.name`` belongs to a module that runs code when a pickle calls it."""
    module = _python3_name(name).rpartition(".")[0]
    return any(module == m or module.startswith(m + ".") for m in _CODE_RUNNING_MODULES)


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    reason = str(err).split("\n", 1)[0]
    return CheckpointError(
        f"cannot read checkpoint {path} ({type(err).__name__}: {reason}); the file is truncated, damaged or not a "
        "PyTorch/safetensors checkpoint. Download or save it again."
    )
