"""Hostile MNIST files, built in tmp_path: each is one DataError naming the file, and a gzip bomb
is refused after decompressing no more than its header promises."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_files import gzip_bomb, idx_bytes

from gradleak.data.mnist import count_mnist, read_mnist
from gradleak.errors import DataError

IMAGES, LABELS = 0x0803, 0x0801
IMAGES_FILE, LABELS_FILE = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def _write(root: Path, images: bytes, labels: bytes, gz: bool = False) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((IMAGES_FILE, images), (LABELS_FILE, labels)):
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return folder


def _valid(count: int = 3) -> tuple[bytes, bytes]:
    pixels = np.arange(count * 784, dtype=np.uint64).astype(np.uint8).tobytes()
    labels = bytes(range(count))
    return idx_bytes(IMAGES, (count, 28, 28), pixels), idx_bytes(LABELS, (count,), labels)


def test_small_valid_files_are_read(tmp_path: Path) -> None:
    _write(tmp_path, *_valid(), gz=True)
    raw = read_mnist(tmp_path, "test", False)
    assert tuple(raw.images.shape) == (3, 1, 28, 28) and raw.labels.tolist() == [0, 1, 2]
    assert count_mnist(tmp_path, "test") == 3


def test_gzip_bomb_is_refused_within_its_declared_size(tmp_path: Path) -> None:
    """One declared image, then 64 MiB of zeros in a ~64 kB file: refused, using ~1 MiB."""
    images, labels = _valid(1)
    folder = _write(tmp_path, b"", labels)
    (folder / IMAGES_FILE).unlink()
    bomb = folder / f"{IMAGES_FILE}.gz"
    gzip_bomb(bomb, images, 64 << 20)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{IMAGES_FILE}\.gz holds .* header promises 784 "):
            read_mnist(tmp_path, "test", False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated to refuse the bomb"


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        # 2**30 * 2**30 * 16 = 2**64, which numpy's int64 product wraps to 0 bytes
        ((1 << 30, 1 << 30, 16), r"declares .* bytes, more than"),
        ((0xFFFF_FFFF, 28, 28), r"each must be 1\.\.2147483647"),  # -1 as the signed int32
        ((0, 28, 28), r"each must be 1\.\."),  # no images at all
        ((3, 0, 28), r"each must be 1\.\."),
    ],
)
def test_header_dimensions_that_overflow_or_vanish_are_refused(
    dims: tuple[int, int, int], message: str, tmp_path: Path
) -> None:
    _write(tmp_path, idx_bytes(IMAGES, dims), _valid()[1])
    with pytest.raises(DataError, match=rf"{IMAGES_FILE} .*{message}"):
        read_mnist(tmp_path, "test", False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an idx file"),
        (b"\x00\x00\x08", "not an idx file"),
        (idx_bytes(IMAGES, (3, 28)), "not an idx file"),  # header cut inside the dimensions
        (idx_bytes(0x0D03, (3, 28, 28), bytes(3 * 784 * 4)), "not an idx file"),  # float32 data
        (idx_bytes(LABELS, (3,), bytes(3)), "not an idx file"),  # a labels file in its place
        (idx_bytes(IMAGES, (3, 28, 28), bytes(3 * 784 - 1)), "holds 2351 data bytes"),
        (idx_bytes(IMAGES, (3, 28, 28), bytes(3 * 784 + 1)), "holds more than 2352"),
    ],
)
def test_malformed_images_file_names_it(content: bytes, message: str, tmp_path: Path) -> None:
    _write(tmp_path, content, _valid()[1])
    with pytest.raises(DataError, match=rf"{IMAGES_FILE} .*{message}"):
        read_mnist(tmp_path, "test", False)


def test_file_named_gz_that_is_not_gzip(tmp_path: Path) -> None:
    folder = _write(tmp_path, *_valid())
    (folder / LABELS_FILE).rename(folder / f"{LABELS_FILE}.gz")
    with pytest.raises(DataError, match=rf"{LABELS_FILE}\.gz is truncated or corrupt"):
        read_mnist(tmp_path, "test", False)
    with pytest.raises(DataError, match=rf"{LABELS_FILE}\.gz is truncated or corrupt"):
        count_mnist(tmp_path, "test")


def test_label_count_and_range_are_checked(tmp_path: Path) -> None:
    images, _ = _valid(3)
    _write(tmp_path, images, idx_bytes(LABELS, (2,), bytes(2)))
    with pytest.raises(DataError, match="holds 3 images but"):
        read_mnist(tmp_path, "test", False)
    _write(tmp_path, images, idx_bytes(LABELS, (3,), bytes([0, 10, 1])))
    with pytest.raises(DataError, match="labels above 9"):
        read_mnist(tmp_path, "test", False)
