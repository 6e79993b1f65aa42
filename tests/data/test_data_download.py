from __future__ import annotations

import hashlib
import http.client
import io
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gradleak.data.cifar import CIFAR10, read_cifar
from gradleak.data.download import Resource, download
from gradleak.errors import DataError


def _resource(source: Path, digest: str, *urls: str) -> Resource:
    return Resource("blob.bin", (*urls, source.as_uri()), digest, "sha256")


def test_verified_download(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    missing_mirror = (tmp_path / "absent.bin").as_uri()
    got = download(_resource(source, digest, missing_mirror), tmp_path / "out")
    assert got.read_bytes() == source.read_bytes()


def test_wrong_checksum_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"tampered")
    with pytest.raises(DataError, match=r"sha256 .* expected 00"):
        download(_resource(source, "00" * 32), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cifar_download_and_extract(
    data_root: Path, tmp_path: Path, require: Callable[..., None]
) -> None:
    require("cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta")
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("test_batch", "batches.meta"):
            data = (data_root / "cifar-10-batches-py" / name).read_bytes()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    layout = replace(CIFAR10, archive=Resource(archive.name, (archive.as_uri(),), md5))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="download=true"):
        read_cifar(layout, root, "test", False)
    assert read_cifar(layout, root, "test", True).labels[:3].tolist() == [3, 8, 8]


class _CutResponse(io.BytesIO):
    """A mirror that sends part of the body and then breaks off, as a dropped connection does."""

    def read(self, size: int | None = -1) -> bytes:
        raise http.client.IncompleteRead(b"partial", 1000)

    def __enter__(self) -> _CutResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_mirror_breaking_off_mid_body_falls_through_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload" * 100)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    real_urlopen = urllib.request.urlopen

    def urlopen(url: str, timeout: float) -> object:
        return _CutResponse() if url.startswith("http://") else real_urlopen(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    cut = "http://mirror.invalid/blob.bin"
    got = download(_resource(source, digest, cut), tmp_path / "out")
    assert got.read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match=r"mirror\.invalid/blob\.bin: IncompleteRead"):
        download(Resource("blob.bin", (cut,), digest, "sha256"), tmp_path / "out2")
    assert list((tmp_path / "out2").iterdir()) == []


def test_download_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the data folder should be")
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    with pytest.raises(DataError, match=r"cannot create .*file/sub to download into"):
        download(_resource(source, "00" * 32), tmp_path / "file" / "sub")
