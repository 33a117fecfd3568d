"""Training state as files that carry no code: safetensors for tensors, JSON for everything else.

A checkpoint must never be able to run code when it is loaded, so nothing here pickles. Each piece of state is a
safetensors file whose tensors are the numbers and whose metadata header (a str -> str map) holds the JSON of the
rest; loading parses that header as JSON and never constructs an object it names. The pieces:

- ``model.safetensors``: the unwrapped model's state dict (``resmlp.create_model`` reads it too);
- ``optimizer.safetensors``: the optimiser's per-parameter tensors, plus its parameter groups and any scalar state
  (step counts) as JSON;
- ``<name>.safetensors``: each extra object's state dict (an EMA, the DINO teacher, the loss centre);
- ``rng_<rank>.safetensors``: the Python, NumPy, torch CPU and CUDA generator states of one process.

Every reader raises ``StateFileError`` naming the file (and what to do) for a missing, truncated, foreign or
tampered file, before anything is applied to the run::

    write_tensors(path, model_state)                 # any flat {name: tensor} dict
    state = read_tensors(path)                       # {name: tensor} on the CPU
    write_optimizer(path, optimizer.state_dict()); optimizer.load_state_dict(read_optimizer(path))
    write_rng(path); set_rng(read_rng(path))
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resmlp.cli import UserError

_META_KEY = "trainkit"


class StateFileError(UserError):
    """A training-state file that cannot be read as written by ``trainkit``; the message names the file."""


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: Any = None) -> Path:
    """Write a flat ``{name: tensor}`` dict (and a JSON-serialisable ``meta``) as one safetensors file, fsynced."""
    from safetensors.torch import save_file

    path = Path(path)
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"{path.name}: state entries {bad[:5]} are not tensors; only tensors can be checkpointed here")
    # safetensors refuses tensors that share memory (tied weights, views): those are copied, the others written as is.
    plain, seen = {}, set()
    for key, value in tensors.items():
        value = value.detach().to("cpu").contiguous()
        storage = value.untyped_storage()
        whole = value.numel() * value.element_size() == storage.nbytes()
        plain[key] = value if whole and storage.data_ptr() not in seen else value.clone()
        seen.add(storage.data_ptr())
    save_file(plain, str(path), metadata={_META_KEY: json.dumps(meta)})
    _fsync(path)
    return path


def read_tensors_and_meta(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], Any]:
    """``(tensors, meta)`` from a file written by ``write_tensors``; ``StateFileError`` naming it otherwise."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise StateFileError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a mapping)
    except Exception as err:  # safetensors raises its own error types for a damaged or foreign file
        reason = " ".join(str(err).split())[:200]
        raise StateFileError(
            f"cannot read {path}: not a valid safetensors file ({type(err).__name__}: {reason})"
        ) from None
    try:
        meta = json.loads(header.get(_META_KEY, "null"))
    except json.JSONDecodeError as err:
        raise StateFileError(f"cannot read {path}: its metadata is not valid JSON ({err})") from None
    return tensors, meta


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a file written by ``write_tensors``."""
    return read_tensors_and_meta(path)[0]


# ---------------------------------------------------------------- optimiser
def write_optimizer(path: str | os.PathLike, state_dict: dict[str, Any]) -> Path:
    """``optimizer.state_dict()`` as tensors ``state/<param>/<name>`` plus JSON for groups and scalar state."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{param}/{name}"] = value
            else:
                scalars.setdefault(str(param), {})[name] = _jsonable(value, f"state[{param}][{name}]")
    meta = {
        "param_keys": [[str(k), isinstance(k, int)] for k in state_dict["state"]],
        "scalars": scalars,
        "param_groups": _jsonable(state_dict["param_groups"], "param_groups"),
    }
    return write_tensors(path, tensors, meta)


def read_optimizer(path: str | os.PathLike) -> dict[str, Any]:
    """The ``state_dict`` written by ``write_optimizer``, ready for ``optimizer.load_state_dict``."""
    tensors, meta = read_tensors_and_meta(path)
    if not isinstance(meta, dict) or not {"param_keys", "scalars", "param_groups"} <= meta.keys():
        raise StateFileError(f"cannot read {path}: it is not an optimiser state written by trainkit")
    keys = {text: (int(text) if is_int else text) for text, is_int in meta["param_keys"]}
    state: dict[Any, dict[str, Any]] = {key: {} for key in keys.values()}
    try:
        for name, value in tensors.items():
            _, param, entry = name.split("/", 2)
            state[keys[param]][entry] = value
        for param, entries in meta["scalars"].items():
            state[keys[param]].update(entries)
    except (KeyError, ValueError):
        raise StateFileError(f"cannot read {path}: its tensors do not match its parameter list") from None
    groups = [_restore_tuples(group) for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _restore_tuples(group: dict[str, Any]) -> dict[str, Any]:
    """JSON has no tuples; optimisers compare ``betas`` and similar as sequences, so only ``betas`` is converted."""
    return {k: (tuple(v) if k == "betas" and isinstance(v, list) else v) for k, v in group.items()}


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"optimiser {where} holds a {type(value).__name__}, which cannot be checkpointed without pickle")


# ---------------------------------------------------------------- random generators
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's generator states: ``(tensors, json)`` (Python, NumPy, torch CPU, every CUDA device)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{index}"] = value
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
    }
    return tensors, meta


def write_rng(path: str | os.PathLike) -> Path:
    """Write this process's generator states (``capture_rng``)."""
    tensors, meta = capture_rng()
    return write_tensors(path, tensors, meta)


def read_rng(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check the generator states written by ``write_rng`` (nothing is applied yet)."""
    tensors, meta = read_tensors_and_meta(path)
    try:
        version, internal, gauss = meta["python"]
        kind, pos, has_gauss, cached = meta["numpy"]
        ok = len(internal) == 625 and tensors["numpy_keys"].numel() == 624 and tensors["torch_cpu"].dtype == torch.uint8
        ok = ok and kind == "MT19937" and isinstance(version, int) and all(isinstance(i, int) for i in internal)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise StateFileError(f"cannot read {path}: it is not a random-generator state written by trainkit")
    return tensors, meta


def set_rng(state: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
    """Restore the states returned by ``read_rng`` into this process's generators."""
    tensors, meta = state
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
