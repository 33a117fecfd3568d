"""The data grammar: one way to name a dataset, in every recipe (``data.dataset``) and every command (``--data``).

========================  =======================================================================================
spec                      what it reads
========================  =======================================================================================
``digits``                built in: scikit-learn's 8x8 digits, upscaled (1,438 train / 359 val, 10 classes)
``procedural``            built in: generated shapes whose class is a spatial relation (12 classes)
``folder:ROOT``           ImageNet-style class folders ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``
``imagenet:ROOT``         the same layout (ImageNet-1k as extracted); evaluation reads ``ROOT/val``
``imagenetv2:ROOT``       ImageNet-V2 ``ROOT/<class index 0..999>/*``: evaluation only
``cifar10:ROOT``          the CIFAR-10 python files, ``ROOT/cifar-10-batches-py/`` (nothing is downloaded)
``cifar100:ROOT``         the CIFAR-100 python files, ``ROOT/cifar-100-python/``
========================  =======================================================================================

``parse_data("folder:/data/x")`` returns a ``DataSource``; anything else (a bare path, an unknown name, a built-in
with a folder, a folder kind without one) raises ``DataSpecError`` with the spelling that would work::

    source = parse_data(cfg.data.dataset, where="data.dataset")
    dataset = build_image_dataset(source, "train", transform)           # trainkit.data.build
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import DataSpecError

BUILTIN = ("digits", "procedural")
ON_DISK = ("folder", "imagenetv2", "cifar10", "cifar100")
ALIASES = {"imagenet": "folder"}
GRAMMAR = "digits | procedural | folder:ROOT | imagenet:ROOT | imagenetv2:ROOT | cifar10:ROOT | cifar100:ROOT"
_SPLITS = {"imagenetv2": ("val",)}


@dataclass(frozen=True)
class DataSource:
    """A parsed data spec.

    Attributes:
        kind: ``digits``, ``procedural``, ``folder``, ``imagenetv2``, ``cifar10`` or ``cifar100`` (``imagenet`` is
            read as ``folder``).
        root: The folder of an on-disk dataset; empty for the built-in ones.
        spec: The spec as written (for messages).
    """

    kind: str
    root: str = ""
    spec: str = ""

    @property
    def builtin(self) -> bool:
        return self.kind in BUILTIN

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this dataset has (ImageNet-V2 is a test set: ``val`` only)."""
        return _SPLITS.get(self.kind, ("train", "val"))

    def __str__(self) -> str:
        return self.spec or (self.kind if not self.root else f"{self.kind}:{self.root}")


def parse_data(spec: str, *, where: str = "--data") -> DataSource:
    """Read ``spec`` in the data grammar (module docstring); ``where`` names the option in error messages."""
    text = str(spec).strip()
    name, colon, root = text.partition(":")
    kind = ALIASES.get(name, name)
    if kind in BUILTIN:
        if colon:
            raise DataSpecError(f"{where}={text}: the built-in {kind} dataset takes no folder; write {where}={kind}")
        return DataSource(kind, "", text)
    if kind in ON_DISK:
        if not root.strip():
            raise DataSpecError(f"{where}={text}: give the folder, as {where}={name}:ROOT")
        return DataSource(kind, root, text)
    if not colon and ("/" in text or "\\" in text or text.startswith(".")):
        raise DataSpecError(
            f"{where}={text}: a folder is written with its kind, e.g. {where}=folder:{text} (class folders under "
            f"train/ and val/) or {where}=imagenetv2:{text}; the data grammar is {GRAMMAR}"
        )
    close = difflib.get_close_matches(name, [*BUILTIN, *ON_DISK, *ALIASES], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataSpecError(f"{where}={text}: unknown dataset {name!r}{hint}; the data grammar is {GRAMMAR}")
