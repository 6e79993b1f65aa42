"""Run a planned sweep into a results store: claim, execute, record, resume.

Every run is claimed in the store before it is submitted, so several sweep processes on one
store share the work and each run executes once. Each outcome is committed as it arrives; an
interruption (Ctrl-C, SIGTERM, a full disk) hands the runs in flight back to ``pending``, and a
SIGKILL, which skips that, is repaired by the next invocation (see :meth:`ResultStore.plan`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from rich.progress import Progress

from gradleak.errors import StoreError
from gradleak.experiments.backends import (
    Backend,
    BackendOptions,
    RunFunction,
    RunOutcome,
    RunTask,
    default_run_function,
    make_backend,
    now_iso,
)
from gradleak.experiments.store import HEARTBEAT_S, ResultStore
from gradleak.experiments.sweep import Sweep
from gradleak.progress_bar import progress_bar


@dataclass(frozen=True)
class SweepSummary:
    """How a sweep invocation went; ``run_seconds`` sums the runs' own wall time.

    ``skipped`` runs were finished before this invocation; ``elsewhere`` runs were being run,
    or were taken meanwhile, by another sweep process on the same store."""

    total: int
    skipped: int
    done: int
    failed: int
    wall_seconds: float
    run_seconds: float
    elsewhere: int = 0


@dataclass
class _Counts:
    done: int = 0
    failed: int = 0
    elsewhere: int = 0


def _drive(
    sweep: Sweep,
    tasks: list[RunTask],
    backend: Backend,
    store: ResultStore,
    bar: Progress,
    counts: _Counts,
) -> list[RunOutcome]:
    """Keep the backend full with runs this process could claim, commit each outcome as it
    arrives, and keep the claims' heartbeat fresh; on any interruption hand the runs in
    flight back to ``pending``."""
    queue, in_flight, outcomes = deque(tasks), set[str](), list[RunOutcome]()
    bar_task = bar.add_task(sweep.name, total=len(tasks), done=0, failed=0)
    beat = time.monotonic()
    try:
        while queue or in_flight:
            while queue and len(in_flight) < backend.capacity:
                task = queue.popleft()
                if store.claim(sweep.name, task.id, now_iso(), str(task.output_dir)):
                    backend.submit(task)
                    in_flight.add(task.id)
                else:  # another sweep on this store took it
                    counts.elsewhere += 1
                    bar.update(bar_task, advance=1)
            if not in_flight:
                continue
            for outcome in backend.wait(timeout=HEARTBEAT_S):
                store.record(sweep.name, outcome)
                in_flight.discard(outcome.id)
                outcomes.append(outcome)
                counts.done += outcome.status == "done"
                counts.failed += outcome.status == "failed"
                if outcome.error:
                    bar.console.print(f"[red]failed[/] {outcome.id}: {outcome.error}")
                bar.update(bar_task, advance=1, done=counts.done, failed=counts.failed)
            if time.monotonic() - beat >= HEARTBEAT_S:
                store.heartbeat(sweep.name)
                beat = time.monotonic()
    except BaseException:
        # On a full disk this fails too; the next invocation releases them (owner dead).
        with contextlib.suppress(StoreError):
            store.mark_pending(sweep.name, in_flight)
        raise
    return outcomes


def _safe_dirname(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "sweep"


def run_sweep(
    sweep: Sweep,
    store_path: Path,
    backend: str = "local",
    options: BackendOptions | None = None,
    output_dir: Path | None = None,
    run: RunFunction = default_run_function,
    retry_failed: bool = False,
    progress: bool = False,
) -> SweepSummary:
    """Run every run of ``sweep`` not yet done in the store; safe to repeat after any
    interruption, and safe to run in several processes at once on one store.

    Order matters for "store untouched": the store file is checked (read-only) and the backend
    started (a Ray address that does not answer, or a ``cuda`` run where no GPU is, fails here)
    before the store is created or written. ``options`` defaults to the sweep's own resources.
    Artefacts go to ``output_dir/<sweep>/<run id>`` (default: ``runs/`` beside the store); on a Ray
    cluster that folder must be on a file system every node shares.
    """
    t0 = time.perf_counter()
    store_path = Path(store_path)
    ResultStore.check(store_path)
    runs_root = (output_dir or store_path.parent / "runs").resolve() / _safe_dirname(sweep.name)
    options = options or BackendOptions(resources=sweep.resources, slurm=sweep.slurm)
    engine = make_backend(backend, replace(options, devices=sweep.devices()))
    counts = _Counts()
    try:
        with ResultStore.open(store_path) as store:
            store.plan(sweep.name, sweep.runs, retry_failed=retry_failed)
            statuses = store.statuses(sweep.name)
            tasks = [
                RunTask(r.id, r.config, runs_root / r.id, run)
                for r in sweep.runs
                if statuses[r.id] == "pending"
            ]
            running_elsewhere = sum(statuses[r.id] == "running" for r in sweep.runs)
            counts.elsewhere = running_elsewhere
            bar = progress_bar(
                "{task.description}",
                "[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]",
                enabled=progress,
            )
            with bar:
                outcomes = _drive(sweep, tasks, engine, store, bar, counts)
    finally:
        engine.close()
    return SweepSummary(
        total=len(sweep.runs),
        skipped=len(sweep.runs) - len(tasks) - running_elsewhere,
        done=counts.done,
        failed=counts.failed,
        wall_seconds=time.perf_counter() - t0,
        run_seconds=sum(o.wall_seconds for o in outcomes),
        elsewhere=counts.elsewhere,
    )
