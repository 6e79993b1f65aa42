"""Fetching official data set files, verified against their published checksums.

Only used when the user sets ``data.download=true`` and the files are missing. A file is
written under a temporary name and moved into place only after its checksum matches, so an
interrupted or tampered download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gradleak.errors import DataError

_CHUNK = 1 << 20
_TRANSFER_ERRORS = (OSError, ValueError, http.client.HTTPException)
"""What a mirror can do wrong: refuse, time out, fill the disk (OSError), be no URL (ValueError),
or break off mid-body or answer garbage (``http.client.IncompleteRead`` and the other
``HTTPException`` subclasses, which are not ``OSError``)."""


@dataclass(frozen=True)
class Resource:
    """One downloadable file: where it lives (mirrors in order) and its published digest."""

    filename: str
    urls: tuple[str, ...]
    digest: str
    algorithm: str = "md5"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks so large archives need little memory."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def require_sha256(path: Path, sha256: str, what: str) -> None:
    """Refuse ``path`` (one DataError line) unless its SHA-256 is the pinned ``sha256`` of
    ``what``: a fetched archive is checked before anything in it is read."""
    try:
        digest = file_digest(path, "sha256")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if digest != sha256:
        raise DataError(
            f"refusing {path}: its sha256 is {digest}, not the pinned {sha256} of {what}"
        )


def _fetch(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)


def download(resource: Resource, folder: Path) -> Path:
    """Download ``resource`` into ``folder`` (trying each mirror) and verify it.

    Returns the verified file. Raises DataError when no mirror answers or the digest differs.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {folder} to download into ({exc.strerror or exc})"
        ) from None
    target = folder / resource.filename
    partial = folder / f".{resource.filename}.part"
    failures: list[str] = []
    for url in resource.urls:
        try:
            _fetch(url, partial)
            actual = file_digest(partial, resource.algorithm)
            if actual == resource.digest:
                os.replace(partial, target)
                return target
        except _TRANSFER_ERRORS as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        failures.append(f"{url}: {resource.algorithm} {actual}, expected {resource.digest}")
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)
    raise DataError(
        f"could not download a verified {resource.filename} into {folder} "
        f"({'; '.join(failures)}); retry, or copy the official file there by hand"
    )


def extract_tar(archive: Path, folder: Path) -> None:
    """Unpack a verified tarball, refusing members that would land outside ``folder``."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot unpack {archive}: {exc}; delete it and download again") from None


def missing_files_error(title: str, folder: Path, missing: list[str], home: str) -> DataError:
    """The one-line error for a data set that is not on disk and was not to be downloaded."""
    return DataError(
        f"{title} not found: expected {', '.join(missing)} in {folder}; copy the files there, "
        f"or add --set data.download=true to fetch them from {home}"
    )
