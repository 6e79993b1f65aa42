"""The results store: one SQLite file (WAL mode) holding every run of every sweep.

Only the sweep's parent process writes, one short transaction per finished run, so a run is
either committed whole or not at all: a Ctrl-C or a SIGKILL loses only the runs in flight, which
are still ``pending``/``running`` and are redone on the next invocation. WAL lets
``gradleak results`` and ``gradleak report`` read while a sweep writes, and ``busy_timeout``
lets a second writer (say, another sweep into the same file) wait instead of failing.

A file that exists must already be a gradleak store (its ``meta`` table says so); anything
else is refused before a single byte of it is written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradleak.errors import ConfigError
from gradleak.experiments.backends import RunOutcome

if TYPE_CHECKING:
    from gradleak.experiments.sweep import PlannedRun

STORE_FORMAT = "gradleak-results"
STORE_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
STATUSES = ("pending", "running", "done", "failed")

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    sweep TEXT NOT NULL,
    id TEXT NOT NULL,
    position INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {STATUSES}),
    metrics_json TEXT,
    error TEXT,
    started TEXT,
    finished TEXT,
    wall_seconds REAL,
    artifacts_path TEXT,
    PRIMARY KEY (sweep, id)
);
CREATE INDEX runs_status ON runs (sweep, status);
"""


@dataclass(frozen=True)
class StoredRun:
    """One row of ``runs``, with its JSON columns parsed."""

    sweep: str
    id: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    error: str | None
    started: str | None
    finished: str | None
    wall_seconds: float | None
    artifacts_path: str | None


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    try:
        uri = f"{path.resolve().as_uri()}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.OperationalError:
        raise ConfigError(f"results store {path} does not exist or cannot be opened") from None
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _check_is_store(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not a gradleak store, reading only."""
    not_store = f"{path} is not a gradleak results store; pick another --store file"
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
    except sqlite3.DatabaseError:
        raise ConfigError(not_store) from None
    if meta.get("format") != STORE_FORMAT:
        raise ConfigError(not_store)
    if int(meta.get("version", 0)) > STORE_VERSION:
        raise ConfigError(
            f"{path} was written by a newer gradleak (store version {meta['version']})"
        )


class ResultStore:
    """Open with :meth:`open` (creating a new store) or :meth:`open_existing` (read side)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def check(cls, path: Path) -> None:
        """Raise ConfigError unless ``path`` is absent, empty, or a gradleak store; writes nothing."""
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            cls.open_existing(path).close()

    @classmethod
    def open(cls, path: Path) -> ResultStore:
        """Open a store for a sweep, creating it when the file is absent or empty."""
        path = Path(path)
        cls.check(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path, create=True)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
                conn.executescript(SCHEMA)
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("format", STORE_FORMAT), ("version", str(STORE_VERSION))],
                )
        return cls(conn, path)

    @classmethod
    def open_existing(cls, path: Path) -> ResultStore:
        """Open a store that must already exist (for results and reports)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"results store {path} does not exist")
        conn = _connect(path, create=False)
        try:
            _check_is_store(conn, path)
        except ConfigError:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def plan(self, sweep: str, runs: Iterable[PlannedRun]) -> None:
        """Record a sweep's runs as pending (known runs keep their status), and release runs
        that a killed invocation left ``running`` so that they are redone."""
        rows = [
            (sweep, run.id, i, json.dumps(run.config.model_dump(mode="json")))
            for i, run in enumerate(runs)
        ]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO runs (sweep, id, position, config_json, status) "
                "VALUES (?, ?, ?, ?, 'pending') "
                "ON CONFLICT (sweep, id) DO UPDATE SET position = excluded.position",
                rows,
            )
            self._conn.execute(
                "UPDATE runs SET status = 'pending', started = NULL "
                "WHERE sweep = ? AND status = 'running'",
                (sweep,),
            )

    def statuses(self, sweep: str) -> dict[str, str]:
        """Run id -> status for one sweep."""
        return dict(self._conn.execute("SELECT id, status FROM runs WHERE sweep = ?", (sweep,)))

    def mark_running(self, sweep: str, run_id: str, started: str, artifacts_path: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE runs SET status = 'running', started = ?, artifacts_path = ?, error = NULL "
                "WHERE sweep = ? AND id = ?",
                (started, artifacts_path, sweep, run_id),
            )

    def mark_pending(self, sweep: str, run_ids: Iterable[str]) -> None:
        with self._conn:
            self._conn.executemany(
                "UPDATE runs SET status = 'pending', started = NULL "
                "WHERE sweep = ? AND id = ? AND status = 'running'",
                [(sweep, rid) for rid in run_ids],
            )

    def record(self, sweep: str, outcome: RunOutcome) -> None:
        """Commit one finished run; after this returns it survives any interruption."""
        metrics = json.dumps(outcome.metrics) if outcome.metrics is not None else None
        with self._conn:
            self._conn.execute(
                "UPDATE runs SET status = ?, metrics_json = ?, error = ?, started = ?, "
                "finished = ?, wall_seconds = ?, artifacts_path = ? WHERE sweep = ? AND id = ?",
                (
                    outcome.status,
                    metrics,
                    outcome.error,
                    outcome.started,
                    outcome.finished,
                    outcome.wall_seconds,
                    outcome.artifacts_path,
                    sweep,
                    outcome.id,
                ),
            )

    def sweeps(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT DISTINCT sweep FROM runs ORDER BY 1")]

    def runs(self, sweep: str | None = None) -> list[StoredRun]:
        """Every run (of one sweep, when given) in sweep order."""
        query = (
            "SELECT sweep, id, status, config_json, metrics_json, error, started, finished, "
            "wall_seconds, artifacts_path FROM runs"
        )
        args: tuple[str, ...] = ()
        if sweep is not None:
            query, args = query + " WHERE sweep = ?", (sweep,)
        rows = self._conn.execute(query + " ORDER BY sweep, position", args).fetchall()
        return [
            StoredRun(
                sweep=r[0],
                id=r[1],
                status=r[2],
                config=json.loads(r[3]),
                metrics=json.loads(r[4]) if r[4] is not None else None,
                error=r[5],
                started=r[6],
                finished=r[7],
                wall_seconds=r[8],
                artifacts_path=r[9],
            )
            for r in rows
        ]
