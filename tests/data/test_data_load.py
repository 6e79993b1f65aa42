from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gradleak.config import DataConfig
from gradleak.data import available_datasets, load_dataset
from gradleak.data.transforms import centre_square, convert_channels
from gradleak.errors import DataError, UnknownNameError

MNIST = ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
C10 = ("cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta")


def test_cifar10_prepared(data_root: Path, require: Callable[..., None]) -> None:
    require(*C10)
    data = load_dataset(DataConfig(name="cifar10", root=data_root, image_size=32), 0)
    assert data.images.shape == (1017, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.labels[:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
    gray = load_dataset(DataConfig(name="cifar10", root=data_root, image_size=16, channels=1), 0)
    assert gray.images.shape == (1017, 1, 16, 16)


def test_max_images_and_seeded_shuffle(data_root: Path, require: Callable[..., None]) -> None:
    require(*MNIST)
    cfg = DataConfig(name="mnist", root=data_root, max_images=50, shuffle=True, channels=3)
    first, again, other = load_dataset(cfg, 1), load_dataset(cfg, 1), load_dataset(cfg, 2)
    assert first.images.shape == (50, 3, 32, 32)
    assert torch.equal(first.images[:, 0], first.images[:, 2])
    assert torch.equal(first.labels, again.labels) and torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)
    plain = load_dataset(cfg.model_copy(update={"shuffle": False}), 0)
    assert plain.labels[:4].tolist() == [7, 2, 1, 0]


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"known: .*cifar10.*samples"):
        load_dataset(DataConfig(name="imagenet"), 0)


def test_missing_dataset_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path)) + ".*download=true"):
        load_dataset(DataConfig(name="cifar10", root=tmp_path), 0)


def test_available_datasets(data_root: Path, tmp_path: Path, require: Callable[..., None]) -> None:
    require(*MNIST, *C10)
    rows = {row.name: row for row in available_datasets(data_root)}
    assert rows["mnist"].num_images == 10000 and rows["cifar10"].num_images == 1017
    assert rows["samples"].present
    empty = {row.name: row for row in available_datasets(tmp_path)}
    assert not empty["cifar10"].present and str(tmp_path) in empty["cifar10"].detail
    assert empty["samples"].present


def test_transforms() -> None:
    wide = torch.arange(2 * 6, dtype=torch.float32).view(1, 1, 2, 6)
    assert centre_square(wide).tolist() == [[[[2.0, 3.0], [8.0, 9.0]]]]
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.allclose(
        convert_channels(rgb, 1)[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    )
