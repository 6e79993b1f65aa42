"""What data sets are on disk: the listing behind ``gradleak datasets``.

Each reader module registers a cheap counter next to its reader (label lists or file names,
never decoded images), so listing stays fast even for large local copies. A reader without a
counter is still listed, by loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gradleak.data.base import DATASETS
from gradleak.errors import DataError
from gradleak.registry import Registry

ImageCounter = Callable[[Path, str], int]
"""(root, split) -> number of images. Raises DataError when the data set is absent or broken."""

COUNTERS: Registry[ImageCounter] = Registry("data set")


class DatasetStatus(NamedTuple):
    """One row of the listing: whether a data set can be loaded from ``root`` and its size."""

    name: str
    present: bool
    num_images: int | None
    detail: str


def available_datasets(root: Path, split: str = "test") -> list[DatasetStatus]:
    """Every registered data set with whether ``split`` is present under ``root``.

    ``detail`` is the reason when a data set is absent or broken (the same line loading it
    would raise), so the listing also tells the user how to get it.
    """
    rows = []
    for name in DATASETS:
        try:
            if name in COUNTERS:
                count = COUNTERS.get(name)(root, split)
            else:
                count = len(DATASETS.get(name)(root, split, False).labels)
        except DataError as exc:
            rows.append(DatasetStatus(name, False, None, str(exc)))
        else:
            rows.append(DatasetStatus(name, True, count, f"{count} {split} images"))
    return rows
