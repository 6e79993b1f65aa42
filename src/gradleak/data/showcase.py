"""The 16 photos of FedLeak's published showcase, with their ImageNet labels.

The authors attack these at 128x128 with an untrained sigmoid ResNet-18 of 1000 outputs, so the
labels matter: a plain image folder would label every photo 0 of 2 classes and so change the
gradient. ``images.csv`` (the NIPS 2017 adversarial set's format) gives each ``ImageId`` its
1-based ``TrueLabel``; here labels are 0-based ImageNet indices (``TrueLabel - 1``), images in
ImageId order.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.data.imagefolder import image_files, images_as_raw
from gradleak.errors import DataError

FOLDER = "fedleak_showcase"
IMAGENET_CLASSES = 1000


def _labelled_paths(root: Path) -> tuple[list[Path], list[int]]:
    """The photos that ``images.csv`` labels, sorted by name, and their 0-based labels."""
    folder = root / FOLDER
    table = folder / "images.csv"
    try:
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(
            f"FedLeak showcase not found: cannot read {table} ({exc.strerror or exc}); "
            f"set data.root to the folder holding {FOLDER}/"
        ) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{table} is not a readable CSV ({exc})") from None
    labels: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        try:
            label = int(row["TrueLabel"]) - 1
            labels[row["ImageId"]] = label
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{table} line {line}: needs an ImageId and an integer TrueLabel"
            ) from None
        if not 0 <= label < IMAGENET_CLASSES:
            raise DataError(f"{table} line {line}: TrueLabel {label + 1} is not in 1..1000")
    paths = [p for p in image_files(folder / "images") if p.stem in labels]
    if not paths:
        raise DataError(f"no image in {folder / 'images'} is named by an ImageId of {table}")
    return paths, [labels[p.stem] for p in paths]


@DATASETS.register(FOLDER)
def read_showcase(root: Path, split: str, download: bool) -> RawImages:
    """All 16 photos (there is no split), labelled with their ImageNet classes of 1000."""
    paths, labels = _labelled_paths(root)
    raw = images_as_raw(paths, labels, [])
    return RawImages(raw.images, raw.labels, IMAGENET_CLASSES)


@COUNTERS.register(FOLDER)
def count_showcase(root: Path, split: str) -> int:
    return len(_labelled_paths(root)[0])
