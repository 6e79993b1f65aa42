from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradleak.config import DataConfig
from gradleak.data import load_dataset
from gradleak.data.celeba import read_celeba
from gradleak.data.imagefolder import read_imagefolder
from gradleak.data.samples import read_samples
from gradleak.errors import DataError

CELEBA = "celeba_subset/img_align_celeba"


def _save(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def test_celeba_faces(data_root: Path, require: Callable[..., None]) -> None:
    require(f"{CELEBA}/000001.jpg")
    raw = read_celeba(data_root, "test", False)
    assert len(raw.images) == 32 and raw.images[0].shape == (218, 178, 3)
    assert raw.labels.tolist() == [0] * 32 and raw.num_classes == 2
    data = load_dataset(DataConfig(name="celeba", root=data_root, image_size=64), 0)
    assert data.images.shape == (32, 3, 64, 64)


def test_celeba_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / CELEBA))):
        read_celeba(tmp_path, "test", False)


def test_samples_are_distinct_real_photos() -> None:
    raw = read_samples(Path("/nonexistent"), "test", False)
    assert len(raw.images) >= 8 and raw.labels.tolist() == list(range(len(raw.images)))
    data = load_dataset(DataConfig(name="samples", image_size=32), 0)
    assert data.images.shape == (len(raw.images), 3, 32, 32)
    flat = data.images.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(len(flat)) * 1e3
    assert distances.min() > 1.0
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0


def test_imagefolder_flat(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", (40, 30))
    _save(tmp_path / "b.jpg", (20, 50), value=1)
    (tmp_path / "notes.txt").write_text("not an image")
    raw = read_imagefolder(tmp_path, "test", False)
    assert raw.labels.tolist() == [0, 0] and raw.num_classes == 2
    data = load_dataset(DataConfig(name="imagefolder", root=tmp_path, image_size=16), 0)
    assert data.images.shape == (2, 3, 16, 16)


def test_imagefolder_classes_and_gray(tmp_path: Path) -> None:
    _save(tmp_path / "dog" / "1.png", (8, 8), mode="L")
    _save(tmp_path / "cat" / "1.png", (8, 8), mode="L", value=1)
    _save(tmp_path / "cat" / "2.png", (8, 8), mode="L", value=2)
    raw = read_imagefolder(tmp_path, "test", False)
    assert raw.class_names == ["cat", "dog"] and raw.labels.tolist() == [0, 0, 1]
    assert raw.images[0].shape == (8, 8, 1)
    _save(tmp_path / "dog" / "2.png", (8, 8), mode="RGB")
    assert read_imagefolder(tmp_path, "test", False).images[0].shape == (8, 8, 3)


def test_imagefolder_corrupt_file(tmp_path: Path) -> None:
    _save(tmp_path / "good.png", (8, 8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg"):
        read_imagefolder(tmp_path, "test", False)


def test_imagefolder_empty_or_mixed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no image files"):
        read_imagefolder(tmp_path, "test", False)
    _save(tmp_path / "loose.png", (8, 8))
    _save(tmp_path / "cls" / "x.png", (8, 8))
    with pytest.raises(DataError, match="mixes loose images"):
        read_imagefolder(tmp_path, "test", False)
    with pytest.raises(DataError, match="does not exist"):
        read_imagefolder(tmp_path / "nowhere", "test", False)
