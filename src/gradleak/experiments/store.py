"""The results store: one SQLite file (WAL mode) holding every run of every sweep.

Only sweep parent processes write, one short transaction per step, so a run is either
committed whole or not at all. Several sweeps may share one store: a run is *claimed* by a
single conditional update (``pending`` -> ``running``, owner recorded), so each run executes
once whoever asks. A sweep that is SIGKILLed leaves its claimed runs ``running``; the next
invocation hands them back to ``pending`` once their owner is known dead (same host, pid gone)
or its heartbeat is stale (any host). WAL lets ``gradleak results`` and ``gradleak report``
read while sweeps write, and ``busy_timeout`` lets writers queue instead of failing.

A file that exists must already be a gradleak store (its ``meta`` table says so); anything
else is refused before a single byte of it is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gradleak.config import ExperimentConfig
from gradleak.experiments.backends.base import RunOutcome
from gradleak.experiments.store_errors import (
    check_path,
    damaged,
    from_os,
    from_sqlite,
    guarded,
    not_a_store,
    write_transaction,
)

STORE_FORMAT = "gradleak-results"
STORE_VERSION = 2
BUSY_TIMEOUT_MS = 30_000
STATUSES = ("pending", "running", "done", "failed")
# A live sweep refreshes its runs' heartbeat this often; a run whose heartbeat is older than
# STALE_AFTER_S belongs to a sweep that is gone (killed, or its machine lost).
HEARTBEAT_S = 5.0
STALE_AFTER_S = 120.0

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
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
    owner TEXT,
    heartbeat REAL,
    PRIMARY KEY (sweep, id)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (sweep, status);
INSERT OR IGNORE INTO meta VALUES ('format', '{STORE_FORMAT}');
INSERT OR IGNORE INTO meta VALUES ('version', '{STORE_VERSION}');
"""
# Version 1 stores lack the claim columns; a sweep adds them (readers need not).
MIGRATE_1_TO_2 = (
    "ALTER TABLE runs ADD COLUMN owner TEXT",
    "ALTER TABLE runs ADD COLUMN heartbeat REAL",
    f"UPDATE meta SET value = '{STORE_VERSION}' WHERE key = 'version'",
)


class PlannableRun(Protocol):
    """What :meth:`ResultStore.plan` needs of a run (``sweep.PlannedRun`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def config(self) -> ExperimentConfig: ...


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


def _json_column(path: Path, run: object, column: str, text: object) -> dict[str, Any] | None:
    """A JSON column of a stored row, which must hold an object (or be NULL)."""
    if text is None:
        return None
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise damaged(path, f"run {run!r} has a {column} that is not a JSON object")
    return value


def stored_run(path: Path, row: tuple[Any, ...]) -> StoredRun:
    """One ``runs`` row as a :class:`StoredRun`, every column checked: a store is a file a user
    hands over, and a report must not trip over a hand-edited or hostile row."""
    sweep, run, status, config, metrics, error, started, finished, wall, artifacts = row
    texts = {"sweep": sweep, "id": run, "status": status}
    optional = {"error": error, "started": started, "finished": finished, "path": artifacts}
    if not all(isinstance(v, str) for v in texts.values()) or not all(
        v is None or isinstance(v, str) for v in optional.values()
    ):
        raise damaged(path, f"run {run!r} has a text column holding another type")
    if wall is not None and (isinstance(wall, bool) or not isinstance(wall, int | float)):
        raise damaged(path, f"run {run!r} has a wall time that is not a number")
    parsed_config = _json_column(path, run, "config", config)
    if parsed_config is None:
        raise damaged(path, f"run {run!r} has no config")
    return StoredRun(
        sweep=sweep,
        id=run,
        status=status,
        config=parsed_config,
        metrics=_json_column(path, run, "metrics", metrics),
        error=error,
        started=started,
        finished=finished,
        wall_seconds=None if wall is None else float(wall),
        artifacts_path=artifacts,
    )


def this_owner() -> str:
    """``host:pid`` of the calling process: who claimed a run, and where to look if it lives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process on this host that no longer exists (or unknown)."""
    if not owner:
        return True  # claimed by a version-1 sweep, which kept no owner
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: only a stale heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    try:
        uri = f"{path.resolve().as_uri()}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise from_sqlite(path, exc) from None
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (a property of the file, kept once set).

    Converting the journal needs exclusive access, and SQLite does not run the busy handler for
    it: two sweeps opening one fresh store together could fail at once with "database is
    locked" whatever ``busy_timeout`` says. So the mode is read first (after the first open
    there is nothing to do), and a refused conversion is retried with backoff within the same
    budget; another sweep finishing the conversion meanwhile counts as done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() == "wal" or time.monotonic() > deadline:
                return  # past the budget a refused switch leaves the rollback journal: slower
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str] | None:
    """The store's meta table; None for an SQLite file with no tables at all (a fresh store
    that another sweep is creating at this moment, or an empty file)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise not_a_store(path, f"its tables are {', '.join(sorted(tables))}")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != STORE_FORMAT:
        raise not_a_store(path, "its meta table names another format")
    if not str(meta.get("version", "")).isdigit():
        raise not_a_store(path, "its meta table has no version")
    if int(meta["version"]) > STORE_VERSION:
        raise not_a_store(path, f"it was written by a newer gradleak, version {meta['version']}")
    return meta


class ResultStore:
    """Open with :meth:`open` (a sweep: creates the store) or :meth:`open_existing` (readers)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.owner = this_owner()

    def _guard(self) -> contextlib.AbstractContextManager[None]:
        return guarded(self.path)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self.path)

    @classmethod
    def check(cls, path: Path) -> None:
        """Raise StoreError unless ``path`` is absent, empty, or a gradleak store; writes nothing."""
        path = Path(path)
        check_path(path, must_exist=False)
        if path.exists() and path.stat().st_size > 0:
            # An SQLite file without tables passes: another sweep may be creating it right now.
            store = cls(_connect(path, create=False), path)
            try:
                with store._guard():
                    _read_meta(store._conn, path)
            finally:
                store.close()

    @classmethod
    def open(cls, path: Path) -> ResultStore:
        """Open a store for a sweep, creating it when the file is absent or empty."""
        path = Path(path)
        cls.check(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os(path, exc) from None
        store = cls(_connect(path, create=True), path)
        try:
            with store._guard():
                _use_wal(store._conn)
                store._conn.execute("PRAGMA synchronous = NORMAL")
            with store._transaction() as conn:
                meta = _read_meta(conn, path)
                if meta is None:
                    # One statement at a time: executescript would commit the transaction.
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        conn.execute(statement)
                elif meta["version"] == "1":
                    for statement in MIGRATE_1_TO_2:
                        conn.execute(statement)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_existing(cls, path: Path) -> ResultStore:
        """Open a store that must already exist (for results and reports)."""
        path = Path(path)
        check_path(path, must_exist=True)
        store = cls(_connect(path, create=False), path)
        try:
            with store._guard():
                if _read_meta(store._conn, path) is None:
                    raise not_a_store(path, "it holds no tables")
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def plan(self, sweep: str, runs: Iterable[PlannableRun], retry_failed: bool = False) -> None:
        """Record a sweep's runs as pending (known runs keep their status), and release runs
        that a dead invocation left ``running`` so that they are redone; with
        ``retry_failed`` failed runs become pending again too. One transaction."""
        rows = [
            (sweep, run.id, i, json.dumps(run.config.model_dump(mode="json")))
            for i, run in enumerate(runs)
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO runs (sweep, id, position, config_json, status) "
                "VALUES (?, ?, ?, ?, 'pending') "
                "ON CONFLICT (sweep, id) DO UPDATE SET position = excluded.position",
                rows,
            )
            running = conn.execute(
                "SELECT id, owner, heartbeat FROM runs WHERE sweep = ? AND status = 'running'",
                (sweep,),
            ).fetchall()
            stale = time.time() - STALE_AFTER_S
            dead = [
                (sweep, rid)
                for rid, owner, beat in running
                if _owner_is_dead(owner) or beat is None or beat < stale
            ]
            conn.executemany(
                "UPDATE runs SET status = 'pending', started = NULL, owner = NULL, "
                "heartbeat = NULL WHERE sweep = ? AND id = ?",
                dead,
            )
            if retry_failed:
                conn.execute(
                    "UPDATE runs SET status = 'pending', error = NULL "
                    "WHERE sweep = ? AND status = 'failed'",
                    (sweep,),
                )

    def statuses(self, sweep: str) -> dict[str, str]:
        """Run id -> status for one sweep."""
        with self._guard():
            rows = self._conn.execute("SELECT id, status FROM runs WHERE sweep = ?", (sweep,))
            return dict(rows.fetchall())

    def claim(self, sweep: str, run_id: str, started: str, artifacts_path: str) -> bool:
        """Take a pending run for this process; False when it is not pending any more (another
        sweep on the store claimed or finished it). Atomic: one conditional update."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', started = ?, artifacts_path = ?, "
                "error = NULL, owner = ?, heartbeat = ? "
                "WHERE sweep = ? AND id = ? AND status = 'pending'",
                (started, artifacts_path, self.owner, time.time(), sweep, run_id),
            )
            return cursor.rowcount == 1

    def mark_running(
        self, sweep: str, run_id: str, started: str, artifacts_path: str, owner: str | None = None
    ) -> None:
        """Mark a run running for ``owner`` (default: this process) whatever its status; tests
        use it to leave the trace of a killed sweep. Sweeps use :meth:`claim`."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'running', started = ?, artifacts_path = ?, "
                "error = NULL, owner = ?, heartbeat = ? WHERE sweep = ? AND id = ?",
                (started, artifacts_path, owner or self.owner, time.time(), sweep, run_id),
            )

    def heartbeat(self, sweep: str) -> None:
        """Say that this process still runs the runs it claimed."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE sweep = ? AND owner = ? AND status = 'running'",
                (time.time(), sweep, self.owner),
            )

    def mark_pending(self, sweep: str, run_ids: Iterable[str]) -> None:
        """Hand runs this process claimed back to ``pending`` (it was interrupted)."""
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE runs SET status = 'pending', started = NULL, owner = NULL, "
                "heartbeat = NULL WHERE sweep = ? AND id = ? AND status = 'running' AND owner = ?",
                [(sweep, rid, self.owner) for rid in run_ids],
            )

    def record(self, sweep: str, outcome: RunOutcome) -> None:
        """Commit one finished run; after this returns it survives any interruption."""
        metrics = json.dumps(outcome.metrics) if outcome.metrics is not None else None
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, metrics_json = ?, error = ?, started = ?, "
                "finished = ?, wall_seconds = ?, artifacts_path = ?, heartbeat = NULL "
                "WHERE sweep = ? AND id = ?",
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
        with self._guard():
            rows = self._conn.execute("SELECT DISTINCT sweep FROM runs ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def runs(self, sweep: str | None = None) -> list[StoredRun]:
        """Every run (of one sweep, when given) in sweep order."""
        query = (
            "SELECT sweep, id, status, config_json, metrics_json, error, started, finished, "
            "wall_seconds, artifacts_path FROM runs"
        )
        args: tuple[str, ...] = ()
        if sweep is not None:
            query, args = query + " WHERE sweep = ?", (sweep,)
        with self._guard():
            rows = self._conn.execute(query + " ORDER BY sweep, position", args).fetchall()
        return [stored_run(self.path, row) for row in rows]
