"""ImageNet-style class folders through torchvision's ImageFolder, with errors that name the folder or file.

``CheckedImageFolder`` reads ``root/<class>/<image>``. It refuses a missing folder, a folder without class
sub-folders and an empty class folder up front, and names the file when an image cannot be decoded. With
``on_corrupt="replace"`` (training) or ``"mark"`` (evaluation) unreadable files are skipped instead, and counted
across DataLoader worker processes in a shared bitmap, so ``corrupt_files()`` reports every skipped file.

``ImageNetV2Folder`` reads ImageNet-V2, whose class folders are named by the integer class index (``0`` ..
``999``) rather than by WordNet id: folder ``"10"`` is class 10, not the third folder in sorted order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from .errors import DataError

logger = logging.getLogger(__name__)
CorruptPolicy = Literal["error", "replace", "mark"]
SKIP_OPTION = "data.skip_corrupt_images=true"  # training recipes; the evaluation commands say --skip-corrupt-images


def read_rgb(path: str) -> Image.Image:
    """Open and fully decode ``path`` as RGB; decoding happens here so a truncated file fails here, not later."""
    with open(path, "rb") as handle:
        image = Image.open(handle)
        return image.convert("RGB")


class CheckedImageFolder(ImageFolder):
    """``torchvision.datasets.ImageFolder`` with clear errors and optional skipping of corrupt images.

    Args:
        root: Folder holding one sub-folder per class.
        transform: Applied to each RGB PIL image.
        on_corrupt: ``error`` (stop, naming the file), ``replace`` (serve the next readable image instead; for
            training, where one extra copy of a neighbour is harmless) or ``mark`` (serve a black image with
            target -1, which ``vision.evaluate`` leaves out of every metric and counts as skipped).
        layout_hint: The expected layout, quoted in the error for a missing folder.
        skip_option: How the user turns skipping on in the command at hand, quoted in the error for a corrupt file.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        on_corrupt: CorruptPolicy = "error",
        layout_hint: str = "",
        skip_option: str = SKIP_OPTION,
    ) -> None:
        root = Path(root)
        hint = layout_hint or f"{root}/<class>/<image>"
        if not root.is_dir():
            raise DataError(f"data folder not found: {root} (expected the layout {hint})")
        if on_corrupt not in ("error", "replace", "mark"):
            raise ValueError(f"on_corrupt must be 'error', 'replace' or 'mark', got {on_corrupt!r}")
        try:
            super().__init__(str(root), transform=transform, loader=read_rgb, allow_empty=True)
        except FileNotFoundError as err:  # torchvision: "Couldn't find any class folder in ..."
            raise DataError(f"no class folders in {root} (expected the layout {hint}): {err}") from None
        self._check_no_empty_class(root)
        self.on_corrupt = on_corrupt
        self.skip_option = skip_option
        # One byte per sample in shared memory: worker processes (forked, or spawned with the dataset as an
        # argument, the one moment a RawArray may be pickled) mark the files they could not read.
        self._corrupt = multiprocessing.RawArray("B", len(self.samples))

    def _check_no_empty_class(self, root: Path) -> None:
        counts = Counter(self.targets)
        empty = [name for name in self.classes if counts[self.class_to_idx[name]] == 0]
        if empty:
            shown = ", ".join(str(root / name) for name in empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise DataError(
                f"{len(empty)} empty class folder(s): {shown} (no files with the extensions "
                f"{', '.join(IMG_EXTENSIONS)}); add images or remove the folder"
            )

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            image, target = self._unreadable(index, err)
        if self.transform is not None:
            image = self.transform(image)
        return image, target

    def _unreadable(self, index: int, err: Exception) -> tuple[Image.Image, int]:
        path = self.samples[index][0]
        reason = f"{type(err).__name__}: {err}".replace("\n", " ")
        if self.on_corrupt == "error":
            raise DataError(
                f"cannot read image {path} ({reason}); replace or delete the file, or pass {self.skip_option} to "
                "skip unreadable images (they are counted and reported)"
            )
        if not self._corrupt[index]:
            self._corrupt[index] = 1
            logger.warning("skipping unreadable image %s (%s)", path, reason)
        if self.on_corrupt == "mark":
            return Image.new("RGB", (64, 64)), -1
        for step in range(1, len(self.samples)):
            other = (index + step) % len(self.samples)
            if self._corrupt[other]:
                continue
            try:
                return self.loader(self.samples[other][0]), self.samples[other][1]
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
                self._corrupt[other] = 1
                logger.warning("skipping unreadable image %s", self.samples[other][0])
        raise DataError(f"no readable image at all in {self.root}")

    def corrupt_files(self) -> list[str]:
        """Paths of the unreadable files met so far (in any worker); after one full pass, all of them."""
        return [self.samples[i][0] for i, flag in enumerate(self._corrupt) if flag]


class ImageNetV2Folder(CheckedImageFolder):
    """ImageNet-V2 (``root/<class index>/<image>``): folder names are class indices, mapped as integers."""

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
        if not names:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
        bad = [name for name in names if not name.isdigit()]
        if bad:
            raise DataError(
                f"ImageNet-V2 class folders are named by class index (0 .. 999), but {directory} has "
                f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; for folders named by WordNet id use "
                f"folder:{Path(directory)}"
            )
        indices = sorted(int(name) for name in names)
        if indices != list(range(len(indices))):
            missing = sorted(set(range(indices[-1] + 1)) - set(indices))
            raise DataError(
                f"ImageNet-V2 class folders in {directory} must be 0 .. {len(indices) - 1} without gaps; missing "
                f"{missing[:10]}{' ...' if len(missing) > 10 else ''}"
            )
        classes = [str(i) for i in indices]  # ordered by value, so classes[k] is folder "k"
        return classes, {name: int(name) for name in names}
