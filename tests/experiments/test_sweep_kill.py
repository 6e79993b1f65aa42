"""A sweep killed with SIGKILL mid-way and run again ends with every run done exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def finished_times(store: Path) -> dict[str, str | None]:
    with ResultStore.open_existing(store) as db:
        return {r.id: r.finished for r in db.runs() if r.status == "done"}


def test_sigkill_then_rerun_completes_every_run_once(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    sweep = tmp_path / "seeds.yaml"
    sweep.write_text(yaml.safe_dump({"base": "tiny.yaml", "grid": {"seed": list(range(5))}}))
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
