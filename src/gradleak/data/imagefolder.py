"""A folder of ordinary image files, optionally one subfolder per class.

This is how users bring their own photos. Labels come from the sorted subfolder names; a flat
folder gives every image label 0. Images keep their own sizes here; ``load_dataset`` crops and
resizes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MIN_CLASSES = 2
"""A classifier head needs two outputs: with one, softmax cross-entropy is constant and every
gradient is zero, which would leave gradient inversion nothing to invert."""


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image(path: Path, mode: str) -> np.ndarray:
    """One image as uint8 (H, W, C) in PIL ``mode`` ("RGB" or "L")."""
    try:
        with Image.open(path) as image:
            array = np.array(image.convert(mode))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path} ({exc}); remove or replace it") from None
    return array[:, :, None] if array.ndim == 2 else array


def _image_mode(paths: list[Path]) -> str:
    """RGB unless every image is single-channel, so one colour image never loses its colour."""
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode not in ("1", "L", "I", "I;16", "F"):
                    return "RGB"
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image {path} ({exc}); remove or replace it") from None
    return "L"


def _scan(root: Path) -> tuple[list[Path], list[int], list[str]]:
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; set data.root to a folder of images "
            "(optionally one subfolder per class)"
        )
    classes = sorted(
        d.name
        for d in root.iterdir()
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
    """Decode ``paths`` with a common channel count into variably sized RawImages."""
    mode = _image_mode(paths)
    images = [read_image(path, mode) for path in paths]
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
