"""Hostile CIFAR pickles, built in tmp_path: bad labels and bad arrays are one DataError naming the
file; numpy pickles of every protocol load; every global beyond what numpy arrays need is refused
and never called."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradleak.data.cifar import count_cifar10, read_cifar10
from gradleak.data.safe_pickle import load_pickle
from gradleak.errors import DataError

C10 = "cifar-10-batches-py"


def _cifar(root: Path, batch: dict[Any, Any], protocol: int = 2, classes: int = 10) -> Path:
    folder = root / C10
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    names = [f"class{i}".encode() for i in range(classes)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder / "test_batch"


def _rows(count: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 3072), dtype=np.uint8)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_pickles_of_every_protocol_are_read(protocol: int, tmp_path: Path) -> None:
    """Protocol 2 is what CIFAR's own scripts and many converters write from Python 3."""
    rows = _rows(4)
    _cifar(tmp_path, {b"data": rows, b"labels": [3, 0, 9, 1]}, protocol)
    raw = read_cifar10(tmp_path, "test", False)
    np.testing.assert_array_equal(raw.images.reshape(4, -1).numpy(), rows)
    assert raw.labels.tolist() == [3, 0, 9, 1] and count_cifar10(tmp_path, "test") == 4


def test_empty_arrays_and_numpy_labels_load(tmp_path: Path) -> None:
    path = tmp_path / "p2"
    content = {b"empty": np.zeros(0, np.uint8), b"labels": np.array([1, 2], np.int64)}
    path.write_bytes(pickle.dumps(content, protocol=2))  # b"" becomes builtins.bytes()
    loaded = load_pickle(path)
    assert loaded[b"empty"].shape == (0,) and loaded[b"labels"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        ([0, -1, 2], r"labels\[1\] is -1"),
        ([0, 1, 10], r"labels\[2\] is 10"),
        ([0, 1.5, 2], r"labels\[1\] is 1\.5"),
        ([0, 1.0, 2], r"labels\[1\] is 1\.0"),  # would be silently cast to 1
        ([0, "cat", 2], r"labels\[1\] is 'cat'"),
        ([0, True, 2], r"labels\[1\] is True"),
        ([0, 1, 2**70], r"labels\[2\] is 1180591620717411303424"),
        (np.array([0, -3, 1], np.int64), r"labels\[1\] is np\.int64\(-3\)|labels\[1\] is -3"),
    ],
)
def test_labels_must_be_integers_in_range(labels: Any, shown: str, tmp_path: Path) -> None:
    path = _cifar(tmp_path, {b"data": _rows(3), b"labels": labels})
    message = rf"{path}: {shown}; labels must be integers in \[0, 10\)"
    with pytest.raises(DataError, match=message):
        read_cifar10(tmp_path, "test", False)
    with pytest.raises(DataError, match=message):
        count_cifar10(tmp_path, "test")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": _rows(2), b"labels": 7}, "no 'labels' list"),
        ({b"data": _rows(2)}, "no 'labels' list"),
        ({b"data": _rows(2), b"labels": np.array([0.0, 1.0])}, "no 'labels' list"),
        ({b"data": _rows(2), b"labels": [0]}, "2 rows of 3072 bytes and 1 labels"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, "0 rows"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "2 rows of 100 bytes"),
        ({b"data": _rows(2).astype(np.float32), b"labels": [0, 1]}, "no uint8 'data' array"),
        ({b"data": [1, 2, 3], b"labels": [0, 1]}, "no uint8 'data' array"),
        ([1, 2, 3], "not a CIFAR pickle"),
    ],
)
def test_malformed_batch_names_the_file(batch: Any, message: str, tmp_path: Path) -> None:
    _cifar(tmp_path, batch)
    with pytest.raises(DataError, match=rf"test_batch.*{message}"):
        read_cifar10(tmp_path, "test", False)


def test_meta_file_without_names_is_refused(tmp_path: Path) -> None:
    _cifar(tmp_path, {b"data": _rows(1), b"labels": [0]}, classes=0)
    with pytest.raises(DataError, match=r"batches\.meta has no 'label_names' list"):
        read_cifar10(tmp_path, "test", False)


def test_undecodable_class_names_are_kept_readable(tmp_path: Path) -> None:
    _cifar(tmp_path, {b"data": _rows(1), b"labels": [0]})
    meta = tmp_path / C10 / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [b"\xff\xfe"] * 10}, protocol=2))
    assert read_cifar10(tmp_path, "test", False).class_names[0] == "\ufffd\ufffd"


@pytest.mark.parametrize("content", [b"", b"\x80\x02", b"not a pickle at all"])
def test_empty_or_garbage_pickle_is_corrupt(content: bytes, tmp_path: Path) -> None:
    _cifar(tmp_path, {})
    (tmp_path / C10 / "test_batch").write_bytes(content)
    with pytest.raises(DataError, match=r"test_batch is truncated or corrupt"):
        read_cifar10(tmp_path, "test", False)


def _call(module: str, name: str, *args: str) -> bytes:
    """A protocol-2 pickle that calls module.name(*args) with string arguments."""
    encoded = [a.encode() for a in args]
    body = b"".join(pickle.SHORT_BINUNICODE + bytes([len(a)]) + a for a in encoded)
    return (
        b"\x80\x02"
        + pickle.GLOBAL
        + f"{module}\n{name}\n".encode()
        + pickle.MARK
        + body
        + pickle.TUPLE
        + pickle.REDUCE
        + pickle.STOP
    )


@pytest.mark.parametrize(
    ("content", "refused"),
    [
        (_call("os", "system", "touch PWNED"), r"os\.system"),
        (_call("posix", "system", "touch PWNED"), r"posix\.system"),
        (_call("builtins", "eval", "open('PWNED', 'w')"), r"builtins\.eval"),
        (_call("__builtin__", "exec", "open('PWNED', 'w')"), r"__builtin__\.exec"),
        (_call("subprocess", "getoutput", "touch PWNED"), r"subprocess\.getoutput"),
        (_call("numpy", "load", "PWNED"), r"numpy\.load"),
        (_call("_codecs", "encode", "eJwLCPL3AQAE4gGs", "base64"), r"_codecs\.encode"),
        (_call("_codecs", "encode", "x", "zlib_codec"), r"_codecs\.encode"),
        (_call("_codecs", "encode", "x", "latin1", "strict"), r"_codecs\.encode"),
        (_call("_codecs", "encode", "x"), r"_codecs\.encode"),
        (_call("_codecs", "decode", "x", "latin1"), r"_codecs\.decode"),
        (_call("builtins", "bytes", "x"), r"builtins\.bytes with arguments"),
        (_call("__builtin__", "bytes", "x"), r"builtins\.bytes with arguments"),
        (_call("builtins", "getattr", "x", "y"), r"builtins\.getattr"),
    ],
)
def test_unpickler_refuses_everything_numpy_does_not_need(
    content: bytes, refused: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hostile"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"refusing to load {path}: it references {refused}"):
        load_pickle(path)
    assert not (tmp_path / "PWNED").exists()


def test_latin1_encode_still_rebuilds_bytes(tmp_path: Path) -> None:
    path = tmp_path / "ok"
    path.write_bytes(_call("_codecs", "encode", "\u00ff\u0001", "latin1"))
    assert load_pickle(path) == b"\xff\x01"
