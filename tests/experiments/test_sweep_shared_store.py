"""Two sweeps on one store share its runs: each run executes once, and every run finishes."""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import yaml
from sweep_children import counted_run

from gradleak.experiments.backends import BackendOptions
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import load_sweep
from gradleak.experiments.sweep_run import SweepSummary, run_sweep

BASE = {"data": {"name": "samples"}, "model": {"name": "lenet_dlg"}, "attack": {"iterations": 5}}
RUNS = 6


def test_two_sweeps_on_one_store_run_each_run_once(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"seed": list(range(RUNS))}}))
    sweep = load_sweep(path)
    store, out = tmp_path / "results.db", tmp_path / "runs"
    start = threading.Barrier(2)
    summaries: list[SweepSummary] = []
    errors: list[BaseException] = []

    def one_sweep() -> None:
        start.wait()
        try:
            summaries.append(
                run_sweep(sweep, store, "local", BackendOptions(workers=1), out, run=counted_run)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors

    executed = collections.Counter((out / sweep.name / "executions.log").read_text().split())
    assert executed == {run.id: 1 for run in sweep.runs}
    with ResultStore.open_existing(store) as opened:
        assert {r.id: r.status for r in opened.runs()} == {run.id: "done" for run in sweep.runs}
    assert sum(s.done for s in summaries) == RUNS
    assert all(s.done > 0 for s in summaries), "one sweep did all the work"
