"""MNIST in its official idx format, gzipped or not.

idx files carry their own magic number and dimensions, so a truncated or mislabelled file is
caught by comparing the header with the payload instead of failing later with odd shapes.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.data.download import Resource, download, missing_files_error
from gradleak.errors import DataError

_FOLDER = "mnist"
_PREFIX = {"train": "train", "test": "t10k"}
_IMAGES_MAGIC = 0x0803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x0801  # unsigned bytes, 1 dimension
_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CLASS_NAMES = [str(digit) for digit in range(10)]


def _file_names(split: str) -> tuple[str, str]:
    prefix = _PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _locate(folder: Path, name: str, download_missing: bool) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    if not download_missing:
        return None
    gz = f"{name}.gz"
    return download(Resource(gz, tuple(m + gz for m in _MIRRORS), _MD5[gz]), folder)


def _find_files(root: Path, split: str, download_missing: bool) -> tuple[Path, Path]:
    folder = root / _FOLDER
    names = _file_names(split)
    found: list[Path] = []
    missing: list[str] = []
    for name in names:
        path = _locate(folder, name, download_missing)
        if path is None:
            missing.append(f"{name}[.gz]")
        else:
            found.append(path)
    if missing:
        raise missing_files_error("MNIST", folder, missing, _MIRRORS[1])
    images, labels = found
    return images, labels


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read(limit)
        with open(path, "rb") as file:
            return file.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is truncated or corrupt ({exc}); replace it") from None


def _parse_header(path: Path, raw: bytes, magic: int) -> tuple[int, ...]:
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an idx file of the expected kind (magic {magic:#06x})")
    return tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An idx array of unsigned bytes, after checking that the payload matches the header."""
    raw = _read_bytes(path)
    dims = _parse_header(path, raw, magic)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(
            f"{path} holds {len(raw) - offset} data bytes but its header promises {expected} "
            "(truncated or corrupt); replace it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


@DATASETS.register("mnist")
def read_mnist(root: Path, split: str, download: bool) -> RawImages:
    """MNIST digits from ``root/mnist``: (N, 1, 28, 28) uint8 and labels 0-9."""
    images_path, labels_path = _find_files(root, split, download)
    images, labels = read_idx(images_path, _IMAGES_MAGIC), read_idx(labels_path, _LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} "
            f"{labels.shape[0]} labels; replace the pair"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path} holds labels above 9; replace it")
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return RawImages(tensor, torch.from_numpy(labels.astype(np.int64)), 10, CLASS_NAMES)


@COUNTERS.register("mnist")
def count_mnist(root: Path, split: str) -> int:
    """The image count from the labels file's header alone."""
    _, labels_path = _find_files(root, split, download_missing=False)
    return _parse_header(labels_path, _read_bytes(labels_path, 8), _LABELS_MAGIC)[0]
