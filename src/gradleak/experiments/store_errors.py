"""What can go wrong with a results store, each said in one line a user can act on.

A store is a file a user hands over: it may be a directory, another kind of file, a damaged
SQLite file, someone else's database, or sit on a disk that fills up in the middle of a sweep.
SQLite commits each run in its own transaction, so a failed write loses nothing already
recorded; these messages say so, and say what to do.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gradleak.errors import StoreError

# SQLite primary result codes (sqlite3.h); ``sqlite_errorcode`` exists from Python 3.11.
SQLITE_BUSY, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 5, 8, 10, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26

KEPT = "runs already recorded are kept; rerun the same command to resume"


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF
    message = str(exc)  # Python 3.10: only the message tells
    for text, value in (
        ("database or disk is full", SQLITE_FULL),
        ("malformed", SQLITE_CORRUPT),
        ("file is not a database", SQLITE_NOTADB),
        ("disk I/O error", SQLITE_IOERR),
        ("database is locked", SQLITE_BUSY),
        ("readonly", SQLITE_READONLY),
        ("unable to open", SQLITE_CANTOPEN),
    ):
        if text in message:
            return value
    return None


def damaged(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"results store {path} is damaged ({detail}); restore it from a copy or pick another "
        "--store file"
    )


def not_a_store(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"{path} is an SQLite database but not a gradleak results store ({detail}); pick "
        "another --store file"
    )


def from_sqlite(path: Path, exc: sqlite3.Error) -> StoreError:
    """The one-line error for an SQLite failure on the store at ``path``."""
    code = _primary_code(exc)
    if code == SQLITE_FULL:
        return StoreError(f"results store {path}: the disk is full; free space, then {KEPT}")
    if code == SQLITE_NOTADB:
        return damaged(path, "not an SQLite file at all")
    if code == SQLITE_CORRUPT:
        return damaged(path, "the SQLite file is malformed or truncated")
    if code == SQLITE_BUSY:
        return StoreError(f"results store {path} stayed locked by another process; {KEPT}")
    if code == SQLITE_READONLY:
        return StoreError(f"results store {path} cannot be written (read-only)")
    if code == SQLITE_IOERR:
        return StoreError(f"results store {path}: the disk failed a read or write ({exc}); {KEPT}")
    if code == SQLITE_CANTOPEN:
        return StoreError(f"results store {path} cannot be opened (check the folder and rights)")
    return StoreError(f"results store {path}: {exc}")


def from_os(path: Path, exc: OSError) -> StoreError:
    """The one-line error for a file-system failure around the store at ``path``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(f"results store {path}: the disk is full; free space, then {KEPT}")
    return StoreError(f"results store {path}: {exc.strerror or exc}")


def check_path(path: Path, must_exist: bool) -> None:
    """Refuse a store path that names a directory, or nothing when a store must exist."""
    if path.is_dir():
        raise StoreError(f"results store {path} is a directory; give the path of a file")
    if must_exist and not path.exists():
        raise StoreError(f"results store {path} does not exist")


@contextmanager
def guarded(path: Path) -> Iterator[None]:
    """Turn SQLite and file-system failures on the store at ``path`` into one-line
    :class:`StoreError`s."""
    try:
        yield
    except sqlite3.Error as exc:
        raise from_sqlite(path, exc) from None
    except OSError as exc:
        raise from_os(path, exc) from None


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the write lock first (``BEGIN IMMEDIATE``), so that what
    it reads cannot change before it writes; rolled back whole on any failure (the failure being
    reported matters more than one in rolling back)."""
    with guarded(path):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.rollback()
            raise
