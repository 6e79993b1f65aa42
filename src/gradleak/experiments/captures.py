"""Captured federated rounds: what a real deployment's server saw, kept for offline attacks.

A capture lives in a results store (``experiments.store``: the same SQLite file format, the
same ``meta`` check, so a store may hold sweeps and captures side by side) in two tables:

- ``captures``: per round, the global arrays and train config the server sent (``node`` =
  :data:`GLOBAL`, kind ``global``), each reply's arrays with its node id and ``num-examples``
  (kind ``reply``), and what the strategy aggregated them to (``node`` = :data:`GLOBAL`, kind
  ``aggregate``). This is exactly what a curious server holds.
- ``ground_truth``: the images and labels a client trained on, written only by a simulation's
  ``ground_truth_mod`` and read only by scoring, never by an attack.

Tensors are stored as NumPy ``.npz`` bytes and read back with ``allow_pickle=False``: a store is
a file a user hands over, and unpickling it could run anything. Nothing here imports Flower; the
integration (``gradleak.integrations.flower``) turns Flower's records into plain arrays first.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradleak.errors import StoreError
from gradleak.experiments.store import ResultStore, _connect
from gradleak.experiments.store_errors import damaged, guarded, write_transaction

GLOBAL = -1
"""The ``node`` of a round's global rows (what the server sent, what it aggregated to)."""

KINDS = ("global", "reply", "aggregate")

CAPTURE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS captures (
    round INTEGER NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN {KINDS}),
    num_examples INTEGER,
    config_json TEXT NOT NULL,
    arrays BLOB NOT NULL,
    PRIMARY KEY (round, node, kind)
);
CREATE TABLE IF NOT EXISTS ground_truth (
    round INTEGER NOT NULL,
    node TEXT NOT NULL,
    arrays BLOB NOT NULL,
    PRIMARY KEY (round, node)
)
"""

Arrays = dict[str, np.ndarray]


def node_key(node: int) -> str:
    """Flower node ids are unsigned 64-bit, past SQLite's signed integers: kept as text."""
    return str(int(node))


def encode_arrays(arrays: Mapping[str, Any]) -> bytes:
    """Named arrays as ``.npz`` bytes (no pickle: object arrays are refused)."""
    buffer = io.BytesIO()
    plain = {name: np.ascontiguousarray(np.asarray(value)) for name, value in arrays.items()}
    for name, value in plain.items():
        if value.dtype == object:
            raise StoreError(f"array {name!r} holds Python objects; only numeric arrays are kept")
    np.savez(buffer, **plain)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_arrays(path: Path, blob: object, what: str) -> Arrays:
    """The named arrays of one stored row; a row that is not plain ``.npz`` is damage."""
    if not isinstance(blob, bytes):
        raise damaged(path, f"{what} holds no array bytes")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise damaged(path, f"{what} does not hold plain arrays ({exc})") from None


@dataclass(frozen=True)
class CapturedRow:
    """One stored row: its arrays, the node's ``num-examples`` (replies) and config."""

    round: int
    node: int
    kind: str
    arrays: Arrays
    num_examples: int | None
    config: dict[str, Any]


class CaptureStore:
    """Open with :meth:`open` (a capturing app: creates the store) or :meth:`open_existing`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | str) -> CaptureStore:
        path = Path(path)
        ResultStore.open(path).close()  # creates or checks the store's meta, as a sweep does
        store = cls(_connect(path, create=False), path)
        with store._write() as conn:
            for statement in filter(str.strip, CAPTURE_SCHEMA.split(";")):
                conn.execute(statement)
        return store

    @classmethod
    def open_existing(cls, path: Path | str) -> CaptureStore:
        path = Path(path)
        ResultStore.open_existing(path).close()
        store = cls(_connect(path, create=False), path)
        with store._guard():
            tables = {
                row[0]
                for row in store._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        if "captures" not in tables:
            store.close()
            raise StoreError(f"results store {path} holds no captured rounds (no captures table)")
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CaptureStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _guard(self) -> AbstractContextManager[None]:
        return guarded(self.path)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.path)

    def put(
        self,
        round_: int,
        node: int,
        kind: str,
        arrays: Mapping[str, Any],
        num_examples: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep one row (a rerun of the same round replaces it)."""
        blob = encode_arrays(arrays)
        text = json.dumps(dict(config or {}), default=str)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO captures VALUES (?, ?, ?, ?, ?, ?)",
                (int(round_), node_key(node), kind, num_examples, text, blob),
            )

    def put_truth(self, round_: int, node: int, images: np.ndarray, labels: np.ndarray) -> None:
        """For scoring only: what ``node`` trained on in ``round_``."""
        blob = encode_arrays({"images": images, "labels": labels})
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO ground_truth VALUES (?, ?, ?)",
                (int(round_), node_key(node), blob),
            )

    def _row(self, row: tuple[Any, ...]) -> CapturedRow:
        round_, node, kind, count, text, blob = row
        what = f"captured round {round_} node {node} ({kind})"
        try:
            config = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            config = None
        if not isinstance(config, dict) or not isinstance(round_, int):
            raise damaged(self.path, f"{what} has no valid config")
        if not isinstance(node, str) or not node.lstrip("-").isdigit():
            raise damaged(self.path, f"{what} has a node id that is not an integer")
        if count is not None and not isinstance(count, int):
            raise damaged(self.path, f"{what} has a num-examples that is not an integer")
        return CapturedRow(
            round_, int(node), kind, decode_arrays(self.path, blob, what), count, config
        )

    def get(self, round_: int, node: int, kind: str) -> CapturedRow | None:
        with self._guard():
            row = self._conn.execute(
                "SELECT round, node, kind, num_examples, config_json, arrays FROM captures "
                "WHERE round = ? AND node = ? AND kind = ?",
                (int(round_), node_key(node), kind),
            ).fetchone()
        return None if row is None else self._row(row)

    def rounds(self) -> list[int]:
        with self._guard():
            rows = self._conn.execute("SELECT DISTINCT round FROM captures ORDER BY round")
            return [int(r[0]) for r in rows.fetchall()]

    def nodes(self, round_: int) -> list[int]:
        """The nodes whose replies the server captured in ``round_``, in node order."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT node FROM captures WHERE round = ? AND kind = 'reply' ORDER BY node",
                (int(round_),),
            )
            return sorted(int(r[0]) for r in rows.fetchall())

    def truth(self, round_: int, node: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For scoring only: the batch ``node`` trained on, when a ground-truth mod kept it."""
        with self._guard():
            row = self._conn.execute(
                "SELECT arrays FROM ground_truth WHERE round = ? AND node = ?",
                (int(round_), node_key(node)),
            ).fetchone()
        if row is None:
            return None
        arrays = decode_arrays(self.path, row[0], f"ground truth of round {round_} node {node}")
        if set(arrays) != {"images", "labels"}:
            raise damaged(self.path, f"ground truth of round {round_} node {node} is malformed")
        return arrays["images"], arrays["labels"]
