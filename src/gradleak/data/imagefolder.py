"""A folder of ordinary image files, optionally one subfolder per class.

This is how users bring their own photos. Labels come from the sorted subfolder names; a flat
folder gives every image label 0. Images keep their own sizes here; ``load_dataset`` crops and
resizes them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.data.pixels import image_mode, is_grey, read_image
from gradleak.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MIN_CLASSES = 2
"""A classifier head needs two outputs: with one, softmax cross-entropy is constant and every
gradient is zero, which would leave gradient inversion nothing to invert."""


def _entries(folder: Path) -> list[Path]:
    """The folder's entries; an unreadable folder is a DataError naming it."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(
            f"cannot list image folder {folder} ({exc.strerror or exc}); fix its permissions"
        ) from None


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), sorted by name.

    ``is_file`` follows symlinks and is false for a dangling or looping link, a folder or a
    device, so only regular files are ever opened.
    """
    return sorted(
        p
        for p in _entries(folder)
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _is_grey(paths: list[Path]) -> bool:
    """Grey unless some image has colour, so one colour image never loses its colour."""
    return all(is_grey(image_mode(path)) for path in paths)


def _scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    if root.exists() and not root.is_dir():
        raise DataError(f"image folder {root} is a file, not a folder; set data.root to a folder")
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; set data.root to a folder of images "
            "(optionally one subfolder per class)"
        )
    classes = sorted(
        d.name
        for d in _entries(root)
        if d.is_dir() and not d.name.startswith(".") and image_files(d)
    )
    loose = image_files(root)
    if classes and loose:
        raise DataError(
            f"{root} mixes loose images ({loose[0].name}, ...) with class subfolders "
            f"({classes[0]}, ...); move the loose images into a subfolder"
        )
    if not classes:
        if not loose:
            raise DataError(
                f"no image files in {root}; expected {', '.join(sorted(IMAGE_SUFFIXES))}"
            )
        return loose, [0] * len(loose), []
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = image_files(root / name)
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes


def images_as_raw(paths: list[Path], labels: list[int], class_names: list[str]) -> RawImages:
    """Decode ``paths`` with a common channel count into variably sized RawImages.

    Each image keeps its own precision (uint8, uint16 or float32 in [0, 1]); ``prepare``
    scales each by its dtype, so 8- and 16-bit files may share a folder.
    """
    grey = _is_grey(paths)
    images = [read_image(path, grey) for path in paths]
    num_classes = max(MIN_CLASSES, len(class_names))
    return RawImages(images, torch.tensor(labels, dtype=torch.long), num_classes, class_names)


@DATASETS.register("imagefolder")
def read_imagefolder(root: Path, split: str, download: bool) -> RawImages:
    """Images under ``root`` itself; ``split`` and ``download`` do not apply to a user's folder."""
    paths, labels, classes = _scan(root)
    return images_as_raw(paths, labels, classes)


@COUNTERS.register("imagefolder")
def count_imagefolder(root: Path, split: str) -> int:
    return len(_scan(root)[0])
