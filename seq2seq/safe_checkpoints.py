"""Let ``torch.load``'s safe (``weights_only``) mode read fairseq checkpoints, without turning safety off.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and fairseq (0.12.x, fairseq-fixed included) calls
it without the flag, so ``fairseq-generate`` fails on checkpoints that hold anything but tensors and containers
(``Unsupported global: argparse.Namespace``). Instead of setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which makes
every load unsafe), this module allowlists the few plain-data types fairseq checkpoints contain; loading stays
restricted to them, so a checkpoint still cannot run code. fairseq imports ``--user-dir`` before it loads a
checkpoint, and this package's ``__init__`` calls ``allow_fairseq_checkpoint_types()``.

The list was found by loading real checkpoints (this plugin's, fairseq's transformer trained with ``--eval-bleu``,
and fairseq-hydra-train's) and adding what ``torch.load`` refused:

- ``argparse.Namespace``: ``cfg.model`` / ``cfg.task`` of argparse-configured models (e.g. ``transformer``);
- numpy arrays (``_reconstruct``, ``ndarray``, ``dtype`` and the numeric dtype classes) and numpy scalars: the
  validation meters saved in ``extra_state["metrics"]`` (BLEU n-gram counts with ``--eval-bleu``).

This plugin's own checkpoints need none of them (its config is a dataclass, saved as a plain dict). Object arrays
stay refused: their elements are pickled objects that are not on the list.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def _numpy_globals() -> list:
    """numpy's array/scalar rebuild functions under both names they are pickled as (numpy 2 ``numpy._core`` and
    numpy 1 ``numpy.core``), plus ``ndarray``, ``dtype`` and the numeric dtype classes."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    entries: list = [np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        function = getattr(multiarray, name)
        entries += [(function, f"numpy._core.multiarray.{name}"), (function, f"numpy.core.multiarray.{name}")]
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    numeric += (np.float16, np.float32, np.float64, np.complex64, np.complex128)
    entries += [type(np.dtype(t)) for t in numeric]
    return entries


def fairseq_checkpoint_globals() -> list:
    """Everything besides tensors and builtin containers that fairseq checkpoints hold."""
    return [argparse.Namespace, *_numpy_globals()]


def allow_fairseq_checkpoint_types() -> None:
    """Add the types fairseq checkpoints hold to ``torch.load``'s safe-mode allowlist (idempotent)."""
    torch.serialization.add_safe_globals(fairseq_checkpoint_globals())
