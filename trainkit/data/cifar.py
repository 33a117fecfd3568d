"""CIFAR-10 / CIFAR-100 from their standard python-pickle files on disk (torchvision, never downloading)."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets import CIFAR10, CIFAR100

from .errors import DataError

# name -> (torchvision class, folder inside root, the files that folder must hold, archive name)
_CIFAR = {
    "cifar10": (
        CIFAR10,
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"],
        "cifar-10-python.tar.gz",
    ),
    "cifar100": (CIFAR100, "cifar-100-python", ["train", "test", "meta"], "cifar-100-python.tar.gz"),
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def cifar_dataset(name: str, root: str | Path, split: str, transform=None) -> CIFAR10:
    """The ``train`` or ``val`` (CIFAR's test set) split of ``cifar10`` or ``cifar100`` stored under ``root``.

    ``root`` is the folder that *contains* ``cifar-10-batches-py/`` (or ``cifar-100-python/``), as left by
    extracting the "python version" archive from the CIFAR page. Nothing is downloaded.
    """
    if name not in _CIFAR:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose cifar10 or cifar100")
    if split not in ("train", "val"):
        raise ValueError(f"{name} has the splits 'train' and 'val' (the test set), got {split!r}")
    dataset_cls, folder, files, archive = _CIFAR[name]
    root = Path(root)
    where = root / folder
    missing = [f for f in files if not (where / f).is_file()]
    if missing:
        fix = f"extract {archive} (the python version, {CIFAR_URL}) into {root} so that {where}/{files[0]} exists"
        if root.name == folder:
            fix = f"pass the parent folder {root.parent} as data.root, not {folder}/ itself"
        raise DataError(f"{name} not found: {where} lacks {', '.join(missing)}; {fix} (nothing is downloaded)")
    try:
        return dataset_cls(str(root), train=split == "train", transform=transform, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted" after its md5 check
        raise DataError(
            f"{name} files in {where} fail torchvision's checksum check ({err}); they are truncated or not the "
            f"original files: extract {archive} again"
        ) from None
