from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gradleak.data.mnist import read_mnist
from gradleak.errors import DataError

IMAGES = "mnist/t10k-images-idx3-ubyte.gz"
LABELS = "mnist/t10k-labels-idx1-ubyte.gz"


def test_mnist_test_split(data_root: Path, require: Callable[..., None]) -> None:
    require(IMAGES, LABELS)
    raw = read_mnist(data_root, "test", False)
    assert isinstance(raw.images, torch.Tensor)
    assert raw.images.shape == (10000, 1, 28, 28) and raw.images.dtype == torch.uint8
    counts = torch.bincount(raw.labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert raw.labels[:4].tolist() == [7, 2, 1, 0]


def _copy_uncompressed(data_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        (folder / Path(name).stem).write_bytes(gzip.decompress((data_root / name).read_bytes()))
    return folder


def test_uncompressed_files_read_the_same(
    data_root: Path, tmp_path: Path, require: Callable[..., None]
) -> None:
    require(IMAGES, LABELS)
    _copy_uncompressed(data_root, tmp_path)
    assert torch.equal(
        read_mnist(tmp_path, "test", False).labels, read_mnist(data_root, "test", False).labels
    )


def test_truncated_idx_file(data_root: Path, tmp_path: Path, require: Callable[..., None]) -> None:
    require(IMAGES, LABELS)
    folder = _copy_uncompressed(data_root, tmp_path)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds .* header promises"):
        read_mnist(tmp_path, "test", False)


def test_truncated_gzip(data_root: Path, tmp_path: Path, require: Callable[..., None]) -> None:
    require(IMAGES, LABELS)
    (tmp_path / "mnist").mkdir()
    (tmp_path / LABELS).write_bytes((data_root / LABELS).read_bytes())
    (tmp_path / IMAGES).write_bytes((data_root / IMAGES).read_bytes()[:50_000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated"):
        read_mnist(tmp_path, "test", False)


def test_wrong_magic(data_root: Path, tmp_path: Path, require: Callable[..., None]) -> None:
    require(IMAGES, LABELS)
    folder = _copy_uncompressed(data_root, tmp_path)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03" + bytes(20))
    with pytest.raises(DataError, match="not an idx file"):
        read_mnist(tmp_path, "test", False)


def test_missing_mnist_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=re.escape(str(tmp_path / "mnist")) + r".*data\.download=true"
    ):
        read_mnist(tmp_path, "train", False)
