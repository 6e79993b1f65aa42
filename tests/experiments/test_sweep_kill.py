"""A sweep killed mid-way (SIGKILL, SIGTERM) leaves no worker behind, keeps what finished, and
run again ends with every run done exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gradleak.errors import ConfigError
from gradleak.experiments.store import ResultStore

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "federation": {"batch_size": 1},
    "attack": {"name": "inverting_gradients", "iterations": 5},
    "metrics": {"lpips": False},
}


def statuses(store: Path) -> dict[str, str]:
    try:
        with ResultStore.open_existing(store) as db:
            return {r.id: r.status for r in db.runs()}
    except ConfigError:  # not created yet
        return {}


HERE = Path(__file__).resolve().parent
WORKER_EXIT_S = 5.0  # how long a worker may outlive its killed sweep


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists and is not a zombie (read from /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def still_alive_after(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def finished_times(store: Path) -> dict[str, str | None]:
    with ResultStore.open_existing(store) as db:
        return {r.id: r.finished for r in db.runs() if r.status == "done"}


def test_sigkill_then_rerun_completes_every_run_once(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = tmp_path / "seeds.yaml"
    # One run per worker at a time (no batching of the seeds), so the kill falls between runs.
    spec = {"base": "tiny.yaml", "grid": {"seed": list(range(5))}, "batch_runs": 1}
    sweep.write_text(yaml.safe_dump(spec))
    store = tmp_path / "results.db"
    command = [
        sys.executable,
        "-m",
        "gradleak.cli",
        "sweep",
        str(sweep),
        "--store",
        str(store),
        "--workers",
        "1",
    ]

    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while "done" not in statuses(store).values():
        assert first.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no run finished within a minute"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep and its worker, like kill -9 on the job
    first.wait()
    before = finished_times(store)
    assert 1 <= len(before) < 5

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr

    with ResultStore.open_existing(store) as db:
        runs = db.runs()
    assert len(runs) == 5 and len({r.id for r in runs}) == 5
    assert {r.status for r in runs} == {"done"}, [r.error for r in runs]
    assert sorted(r.config["seed"] for r in runs) == list(range(5))
    after = {r.id: r.finished for r in runs}
    assert all(after[rid] == stamp for rid, stamp in before.items()), "a finished run was redone"
    assert all((Path(str(r.artifacts_path)) / "metrics.json").is_file() for r in runs)


def child_sweep(sweep: Path, store: Path, out: Path, workers: int) -> list[str]:
    """The command line of a sweep process running ``sweep_children.counted_run``."""
    return [
        sys.executable,
        str(HERE / "sweep_children.py"),
        str(sweep),
        str(store),
        str(out),
        str(workers),
    ]


def child_env(run_seconds: float) -> dict[str, str]:
    """Its environment: this folder importable, and how long each run sleeps."""
    path = os.pathsep.join(filter(None, [str(HERE), *sys.path]))
    return {**os.environ, "PYTHONPATH": path, "GRADLEAK_TEST_RUN_SECONDS": str(run_seconds)}


@needs_proc
def test_sigkill_of_the_sweep_alone_takes_its_workers_with_it(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = tmp_path / "seeds.yaml"
    sweep.write_text(yaml.safe_dump({"base": "tiny.yaml", "grid": {"seed": list(range(4))}}))
    store, out = tmp_path / "results.db", tmp_path / "runs"
    command = child_sweep(sweep, store, out, workers=2)

    first = subprocess.Popen(command, env=child_env(60), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while len(pids := list(out.glob("*/*/worker.pid"))) < 2:
        assert first.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "the two workers did not start within 90 s"
        time.sleep(0.05)
    time.sleep(0.2)  # let both pid files be written whole
    workers = [int(p.read_text()) for p in pids]
    assert all(alive(w) for w in workers)
    os.kill(first.pid, signal.SIGKILL)  # the sweep alone, as the OOM killer or kill -9 <pid> do
    first.wait()

    assert still_alive_after(workers, WORKER_EXIT_S) == [], "workers outlived their sweep"

    second = subprocess.run(
        command, env=child_env(0.2), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    executed = collections.Counter((out / "seeds" / "executions.log").read_text().split())
    assert sorted(executed.values()) == [1, 1, 1, 1]
    assert set(statuses(store).values()) == {"done"} and set(statuses(store)) == set(executed)


@needs_proc
@pytest.mark.parametrize("to_group", [False, True], ids=["sweep-alone", "process-group"])
def test_sigterm_stops_the_sweep_like_ctrl_c_and_keeps_finished_runs(
    tmp_path: Path, to_group: bool
) -> None:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = tmp_path / "seeds.yaml"
    # One run per worker at a time (no batching of the seeds), so the signal falls between runs.
    spec = {"base": "tiny.yaml", "grid": {"seed": list(range(3))}, "batch_runs": 1}
    sweep.write_text(yaml.safe_dump(spec))
    store = tmp_path / "results.db"
    command = [
        sys.executable,
        "-m",
        "gradleak.cli",
        "sweep",
        str(sweep),
        "--store",
        str(store),
        "--workers",
        "1",
    ]

    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    while "done" not in statuses(store).values():
        assert first.poll() is None, "the sweep ended before it could be stopped"
        assert time.monotonic() < deadline, "no run finished within 90 s"
        time.sleep(0.05)
    workers = children(first.pid)
    if to_group:  # as timeout and Slurm do: the workers get it too
        os.killpg(first.pid, signal.SIGTERM)
    else:  # as docker stop does
        first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)

    assert first.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated" in stderr, stderr
    assert still_alive_after(workers, WORKER_EXIT_S) == [], "workers outlived their sweep"
    after = statuses(store)
    assert "done" in after.values() and "pending" in after.values(), after
    assert "running" not in after.values(), "the run in flight was not handed back"
    assert "failed" not in after.values(), "the run in flight was recorded as failed"
