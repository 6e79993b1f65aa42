"""CIFAR-10 and CIFAR-100 in their official "python version" pickle layout.

Files may hold fewer than 10,000 rows (the project's offline copies are prefixes) and may lack
``filenames``; only ``data`` and the label list are needed. Pickles are read with the
numpy-only unpickler because a data file must never be able to run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.data.download import Resource, download, extract_tar, missing_files_error
from gradleak.data.safe_pickle import load_pickle
from gradleak.errors import DataError

_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its files and which keys hold labels and names."""

    title: str
    folder: str
    splits: dict[str, tuple[str, ...]]
    meta_file: str
    label_key: str
    names_key: str
    archive: Resource


CIFAR10 = CifarLayout(
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    archive=Resource(
        "cifar-10-python.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        "c58f30108f718f92721af3b95e74349a",
    ),
)

CIFAR100 = CifarLayout(
    title="CIFAR-100",
    folder="cifar-100-python",
    splits={"train": ("train",), "test": ("test",)},
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    archive=Resource(
        "cifar-100-python.tar.gz",
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
)


def _ensure_files(layout: CifarLayout, root: Path, split: str, download_missing: bool) -> Path:
    folder = root / layout.folder
    wanted = [*layout.splits[split], layout.meta_file]
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing and download_missing:
        extract_tar(download(layout.archive, root), root)
        missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise missing_files_error(layout.title, folder, missing, layout.archive.urls[0])
    return folder


def _as_dict(content: Any, path: Path) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise DataError(f"{path} is not a CIFAR pickle (no dict inside); replace it")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def _is_label(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _labels(path: Path, key: str, labels: Any, num_classes: int) -> np.ndarray:
    """The label list as int64, refused unless every entry is an integer in [0, num_classes).

    Official files hold Python ints; a numpy integer array is accepted too. Floats are refused
    rather than truncated, and bounds are checked on the original values, before any cast.
    """
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        values: list[Any] | np.ndarray = labels
    elif isinstance(labels, list | tuple):
        values = list(labels)
    else:
        raise DataError(
            f"{path} has no {key!r} list (found {type(labels).__name__}); replace it with an "
            "official copy"
        )
    for index, value in enumerate(values):
        if not _is_label(value) or not 0 <= value < num_classes:
            raise DataError(
                f"{path}: {key}[{index}] is {value!r}; labels must be integers in "
                f"[0, {num_classes}) (the classes named in its meta file); replace it"
            )
    return np.asarray(values, dtype=np.int64)


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _as_dict(load_pickle(path), path)
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path} has no uint8 'data' array; replace it with an official copy")
    labels = _labels(path, label_key, batch.get(label_key), num_classes)
    if data.shape[1] != 3 * 32 * 32 or len(labels) != data.shape[0] or not len(labels):
        raise DataError(
            f"{path} holds {data.shape[0]} rows of {data.shape[1]} bytes and {len(labels)} "
            "labels; expected at least one 3072-byte row, one label each; replace it with an "
            "official copy"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(path: Path, names_key: str) -> list[str]:
    names = _as_dict(load_pickle(path), path).get(names_key)
    if not isinstance(names, list) or not names:
        raise DataError(f"{path} has no {names_key!r} list; replace it with an official copy")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def read_cifar(layout: CifarLayout, root: Path, split: str, download_missing: bool) -> RawImages:
    """Read one split; the train split of CIFAR-10 is all five batches, in order."""
    folder = _ensure_files(layout, root, split, download_missing)
    names = _class_names(folder / layout.meta_file, layout.names_key)
    batches = [
        _read_batch(folder / name, layout.label_key, len(names)) for name in layout.splits[split]
    ]
    images = torch.from_numpy(np.concatenate([b[0] for b in batches]))
    labels = torch.from_numpy(np.concatenate([b[1] for b in batches]))
    return RawImages(images, labels, len(names), names)


def count_cifar(layout: CifarLayout, root: Path, split: str) -> int:
    """Images in one split, each batch checked as loading checks it (a pickle is read whole
    anyway), so the listing never calls a file present that loading would refuse."""
    folder = _ensure_files(layout, root, split, download_missing=False)
    classes = len(_class_names(folder / layout.meta_file, layout.names_key))
    return sum(
        len(_read_batch(folder / name, layout.label_key, classes)[1])
        for name in layout.splits[split]
    )


@DATASETS.register("cifar10")
def read_cifar10(root: Path, split: str, download: bool) -> RawImages:
    """CIFAR-10 from ``root/cifar-10-batches-py``."""
    return read_cifar(CIFAR10, root, split, download)


@DATASETS.register("cifar100")
def read_cifar100(root: Path, split: str, download: bool) -> RawImages:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python``."""
    return read_cifar(CIFAR100, root, split, download)


@COUNTERS.register("cifar10")
def count_cifar10(root: Path, split: str) -> int:
    return count_cifar(CIFAR10, root, split)


@COUNTERS.register("cifar100")
def count_cifar100(root: Path, split: str) -> int:
    return count_cifar(CIFAR100, root, split)
