"""A store a user hands over may be anything: each kind of wrong file gets its own one line.

Through the real entry point, for every command that opens a store: exit status 2, one
``error:`` line that says what is wrong (damaged, someone else's database, a directory, a full
disk), no traceback, and the file left as it was.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gradleak.cli import main
from gradleak.config import ExperimentConfig
from gradleak.experiments.backends import RunOutcome
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import PlannedRun, run_id

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "attack": {"iterations": 5},
    "metrics": {"lpips": False},
}


def planned(seed: int) -> PlannedRun:
    config = ExperimentConfig(seed=seed)
    return PlannedRun(run_id(config), config, {"seed": seed})


def a_real_store(path: Path, runs: int = 40) -> Path:
    with ResultStore.open(path) as store:
        plan = [planned(s) for s in range(runs)]
        store.plan("old", plan)
        store.record("old", RunOutcome(plan[0].id, "done", "a", "b", 1.0, {"psnr_mean": 7.0}))
    return path


def text_file(path: Path) -> Path:
    path.write_text("my notes, not a database\n" * 200)
    return path


def truncated_store(path: Path) -> Path:
    whole = a_real_store(path).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def foreign_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE runs (id TEXT, status TEXT)")
        conn.execute("INSERT INTO runs VALUES ('x', 'done')")
    conn.close()
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    (path / "inside.txt").write_text("keep me")
    return path


def fingerprint(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def commands(store: Path, folder: Path) -> dict[str, list[str]]:
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = folder / "seeds.yaml"
    sweep.write_text(yaml.safe_dump({"base": "tiny.yaml", "grid": {"seed": [0, 1]}}))
    return {
        "results": ["results", str(store)],
        "report": ["report", str(store), "--html", str(folder / "page.html")],
        "sweep": ["sweep", str(sweep), "--store", str(store), "--workers", "1"],
    }


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


@pytest.mark.parametrize("command", ["results", "report", "sweep"])
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (text_file, "is damaged (not an SQLite file at all)"),
        (truncated_store, "is damaged (the SQLite file is malformed or truncated)"),
        (foreign_database, "is an SQLite database but not a gradleak results store"),
        (directory, "is a directory"),
    ],
    ids=["text", "truncated", "foreign", "directory"],
)
def test_a_wrong_store_is_named_for_what_it_is(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    make: Callable[[Path], Path],
    expected: str,
) -> None:
    store = make(tmp_path / "results.db")
    before = fingerprint(store)
    argv = commands(store, tmp_path)[command]
    capsys.readouterr()

    assert run_cli(argv, monkeypatch) == 2

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert fingerprint(store) == before
    assert not (tmp_path / "page.html").exists()
    assert not (tmp_path / "runs").exists()


def test_a_full_disk_stops_the_sweep_with_one_line_and_keeps_what_was_recorded(
    tmp_path: Path,
) -> None:
    store = a_real_store(tmp_path / "results.db", runs=3)
    folder = tmp_path / "sweep"
    folder.mkdir()
    argv = commands(store, folder)["sweep"]
    # A bigger sweep: planning it needs more room than the disk has left.
    spec = {"base": "tiny.yaml", "grid": {"seed": list(range(20)), "attack.lr": [0.1, 0.2]}}
    Path(argv[1]).write_text(yaml.safe_dump(spec))
    room = store.stat().st_size + 16 * 1024

    def small_disk() -> None:  # files of this process cannot grow past ``room``
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))

    done = subprocess.run(
        [sys.executable, "-m", "gradleak.cli", *argv],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk" in errors[0] and "kept" in errors[0], done.stderr
    with ResultStore.open_existing(store) as opened:
        kept = opened.runs("old")
    assert [r.status for r in kept] == ["done", "pending", "pending"]
    assert kept[0].metrics == {"psnr_mean": 7.0}
    assert not (folder / "runs").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["results", "report"])
@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("metrics_json", "5", "metrics that is not a JSON object"),
        ("metrics_json", "{not json", "metrics that is not a JSON object"),
        ("config_json", "[1]", "config that is not a JSON object"),
        ("wall_seconds", "'slow'", "wall time that is not a number"),
        ("error", "X'ff'", "text column holding another type"),
    ],
    ids=["metrics-scalar", "metrics-not-json", "config-list", "wall-text", "error-blob"],
)
def test_a_hostile_row_is_a_damaged_store_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    column: str,
    value: str,
    expected: str,
) -> None:
    """A hand-edited or hostile row (valid SQLite, valid schema) is read column by column: the
    report names the damage instead of tripping over it."""
    store = a_real_store(tmp_path / "results.db", runs=3)
    with sqlite3.connect(store) as conn:
        literal = value if value[:1] in "'X" or value.isdigit() else f"'{value}'"
        conn.execute(f"UPDATE runs SET {column} = {literal}")
    capsys.readouterr()

    assert run_cli(commands(store, tmp_path)[command], monkeypatch) == 2

    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is damaged" in errors[0] and expected in errors[0], errors
    assert "Traceback" not in err
