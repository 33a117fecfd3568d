"""Fetch a released file into torch.hub's cache, the way timm and torch.hub users expect.

- The cache is ``torch.hub.get_dir()/checkpoints`` (so ``TORCH_HOME`` moves it); a cached file is used with no
  network access at all.
- ``RESMLP_WEIGHTS_URL`` replaces the base URL (a mirror, or a folder served inside an air-gapped cluster).
- The download shows a progress bar, writes a temporary file in the cache folder and moves it into place only
  once complete: its length must equal the server's Content-Length and its SHA-256 the known checksum, if any.
  An interrupted download never leaves a file that later loads as complete. (Written here rather than calling
  ``torch.hub.download_url_to_file``, which moves a truncated transfer into place as if it were complete.)
- Any failure is one ``WeightsUnavailable`` error naming the file, the URL tried and the ways out.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import CheckpointError
from .weights import DEFAULT_BASE_URL, Weights

BASE_URL_ENV = "RESMLP_WEIGHTS_URL"


class WeightsUnavailable(CheckpointError):
    """The released weights could not be fetched (offline, mirror down, checksum mismatch)."""


def cache_dir() -> Path:
    """Where downloaded weights live: torch.hub's checkpoint folder."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def url_of(weights: Weights) -> str:
    """The URL of ``weights``, under ``RESMLP_WEIGHTS_URL`` when set."""
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return base.rstrip("/") + "/" + weights.file


def fetch(weights: Weights, *, progress: bool = True) -> Path:
    """The local path of ``weights``, downloading it into the cache first if it is not there yet."""
    target = cache_dir() / weights.file
    if target.is_file():
        return target
    url = url_of(weights)
    ways_out = (
        f"put {weights.file} into {target.parent} yourself, set {BASE_URL_ENV} to a mirror that serves it, "
        "or pass checkpoint=PATH to a local copy"
    )
    try:
        _download(url, target, weights.sha256, progress)
    except _Damaged as err:
        raise WeightsUnavailable(f"{weights.name}: {weights.file} from {url} {err}; {ways_out}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise WeightsUnavailable(
            f"{weights.name}: could not download {weights.file} from {url} ({reason}); {ways_out}"
        ) from None
    return target


class _Damaged(Exception):
    """The transfer ended, but what arrived is not the file (short, or the wrong checksum)."""


def _download(url: str, target: Path, sha256: str | None, progress: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        digest = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "resmlp"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=60) as response:
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            with tqdm(total=expected, disable=not progress, unit="B", unit_scale=True, desc=target.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            raise _Damaged(f"stopped after {received} of {expected} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise _Damaged(f"has SHA-256 {digest.hexdigest()}, expected {sha256}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
