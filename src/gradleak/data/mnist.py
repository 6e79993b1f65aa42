"""MNIST in its official idx format, gzipped or not.

idx files carry their own magic number and dimensions, so a truncated or mislabelled file is
caught by comparing the header with the payload instead of failing later with odd shapes.
"""

from __future__ import annotations

import gzip
import io
import math
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
_CHUNK = 1 << 20
_MAX_DIM = 2**31 - 1
"""idx dimensions are signed 32-bit integers; a larger one is a corrupt header."""
MAX_PAYLOAD = 1 << 30
"""Largest idx payload accepted (1 GiB): far above MNIST's 47 MB or EMNIST's 550 MB, and
refused from the header alone, before anything is decompressed."""
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


def _open(path: Path) -> io.BufferedIOBase:
    """The idx bytes of ``path``, decompressed on the fly when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _corrupt(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path} is truncated or corrupt ({exc}); replace it")


def _parse_header(path: Path, raw: bytes, magic: int) -> tuple[int, ...]:
    """The dimensions of an idx header, each a positive signed 32-bit integer as the format says."""
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an idx file of the expected kind (magic {magic:#06x})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 or d > _MAX_DIM for d in dims):
        raise DataError(
            f"{path} declares dimensions {dims}; each must be 1..{_MAX_DIM} (corrupt or not "
            "MNIST); replace it"
        )
    return dims


def _read_header(path: Path, file: io.BufferedIOBase, magic: int) -> tuple[int, ...]:
    return _parse_header(path, file.read(4 + 4 * (magic & 0xFF)), magic)


def _payload_size(path: Path, dims: tuple[int, ...]) -> int:
    """Bytes the header promises, computed exactly (numpy's int64 product wraps around)."""
    size = math.prod(dims)
    if size > MAX_PAYLOAD:
        raise DataError(
            f"{path} declares {dims} = {size} bytes, more than the {MAX_PAYLOAD} accepted "
            "(corrupt or not MNIST); replace it"
        )
    return size


def _read_at_most(file: io.BufferedIOBase, limit: int) -> bytearray:
    """Up to ``limit`` bytes in chunks, so memory follows what the file really holds."""
    buffer = bytearray()
    while len(buffer) < limit and (chunk := file.read(min(_CHUNK, limit - len(buffer)))):
        buffer += chunk
    return buffer


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An idx array of unsigned bytes, after checking that the payload matches the header.

    The header is read first and bounds everything after it: at most one byte more than it
    promises is ever decompressed, so a gzip bomb behind a small header costs its declared size,
    not gigabytes.
    """
    try:
        with _open(path) as file:
            dims = _read_header(path, file, magic)
            expected = _payload_size(path, dims)
            payload = _read_at_most(file, expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, exc) from None
    if len(payload) != expected:
        found = f"more than {expected}" if len(payload) > expected else str(len(payload))
        raise DataError(
            f"{path} holds {found} data bytes but its header promises {expected} "
            "(truncated or corrupt); replace it"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


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
    tensor = torch.from_numpy(images).unsqueeze(1)
    return RawImages(tensor, torch.from_numpy(labels.astype(np.int64)), 10, CLASS_NAMES)


@COUNTERS.register("mnist")
def count_mnist(root: Path, split: str) -> int:
    """The image count from the labels file's header alone."""
    _, labels_path = _find_files(root, split, download_missing=False)
    try:
        with _open(labels_path) as file:
            return _read_header(labels_path, file, _LABELS_MAGIC)[0]
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(labels_path, exc) from None
