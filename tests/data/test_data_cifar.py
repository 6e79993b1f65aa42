from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gradleak.data.cifar import read_cifar10, read_cifar100
from gradleak.data.safe_pickle import load_pickle
from gradleak.errors import DataError

C10 = "cifar-10-batches-py"


def test_cifar10_test_split(data_root: Path, require: Callable[..., None]) -> None:
    require(f"{C10}/test_batch", f"{C10}/batches.meta")
    raw = read_cifar10(data_root, "test", False)
    assert isinstance(raw.images, torch.Tensor)
    assert raw.images.shape == (1017, 3, 32, 32) and raw.images.dtype == torch.uint8
    assert raw.labels[:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
    assert raw.num_classes == 10 and raw.class_names[3] == "cat"
    assert raw.images.float().std() > 30  # real photos, not a blank array


def test_cifar10_train_is_all_five_batches(data_root: Path, require: Callable[..., None]) -> None:
    require(*(f"{C10}/data_batch_{i}" for i in range(1, 6)))
    raw = read_cifar10(data_root, "train", False)
    assert isinstance(raw.images, torch.Tensor)
    assert raw.images.shape[0] == raw.labels.shape[0] == 4 * 1017 + 1437
    assert set(raw.labels.tolist()) == set(range(10))


def test_cifar100_test_split(data_root: Path, require: Callable[..., None]) -> None:
    require("cifar-100-python/test", "cifar-100-python/meta")
    raw = read_cifar100(data_root, "test", False)
    assert isinstance(raw.images, torch.Tensor)
    assert raw.images.shape == (148, 3, 32, 32) and raw.num_classes == 100
    first = [raw.class_names[i] for i in raw.labels[:6].tolist()]
    assert first == ["mountain", "forest", "seal", "mushroom", "sea", "tulip"]


def test_truncated_pickle_names_the_file(
    data_root: Path, tmp_path: Path, require: Callable[..., None]
) -> None:
    require(f"{C10}/test_batch", f"{C10}/batches.meta")
    folder = tmp_path / C10
    folder.mkdir()
    shutil.copy(data_root / C10 / "batches.meta", folder)
    (folder / "test_batch").write_bytes((data_root / C10 / "test_batch").read_bytes()[:100_000])
    with pytest.raises(DataError, match=r"test_batch.*truncated or corrupt"):
        read_cifar10(tmp_path, "test", False)


def test_missing_batch_is_reported_with_its_path(
    data_root: Path, tmp_path: Path, require: Callable[..., None]
) -> None:
    require(f"{C10}/test_batch", f"{C10}/batches.meta")
    shutil.copytree(data_root / C10, tmp_path / C10)
    (tmp_path / C10 / "data_batch_3").unlink(missing_ok=True)
    with pytest.raises(DataError, match=r"data_batch_3 in .*cifar-10-batches-py.*download=true"):
        read_cifar10(tmp_path, "train", False)


def test_unpickler_refuses_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self) -> tuple:
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match=r"evil.*(posix|os)\.system"):
        load_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_unpickler_reads_numpy_arrays(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "ok"
    path.write_bytes(pickle.dumps({b"data": array}, protocol=3))  # 2 needs _codecs
    np.testing.assert_array_equal(load_pickle(path)[b"data"], array)
