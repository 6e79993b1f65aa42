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
    RunBatch,
    RunFunction,
    RunOutcome,
    RunTask,
    Work,
    default_run_function,
    make_backend,
    members,
    now_iso,
)
from gradleak.experiments.run_batches import plan_batches
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
    work: list[Work],
    backend: Backend,
    store: ResultStore,
    bar: Progress,
    counts: _Counts,
) -> list[RunOutcome]:
    """Keep the backend full with work this process could claim, commit each outcome as it
    arrives, and keep the claims' heartbeat fresh; on any interruption hand the runs in
    flight back to ``pending``.

    A batch's runs are claimed one by one; the ones another sweep took meanwhile are left out
    of it. ``capacity`` counts works in flight (a batch takes one worker)."""
    queue, outcomes = deque(work), list[RunOutcome]()
    in_flight: dict[str, set[str]] = {}  # work id -> its runs not yet reported
    work_of: dict[str, str] = {}  # run id -> its work's id
    total = sum(len(members(w)) for w in work)
    bar_task = bar.add_task(sweep.name, total=total, done=0, failed=0)
    beat = time.monotonic()
    try:
        while queue or in_flight:
            while queue and len(in_flight) < backend.capacity:
                claimed, taken_elsewhere = _claim(queue.popleft(), sweep, store)
                counts.elsewhere += taken_elsewhere
                bar.update(bar_task, advance=taken_elsewhere)
                if claimed is None:
                    continue
                backend.submit(claimed)
                in_flight[claimed.id] = {t.id for t in members(claimed)}
                work_of.update((t.id, claimed.id) for t in members(claimed))
            if not in_flight:
                continue
            for outcome in backend.wait(timeout=HEARTBEAT_S):
                store.record(sweep.name, outcome)
                owner = work_of.pop(outcome.id)
                in_flight[owner].discard(outcome.id)
                if not in_flight[owner]:
                    del in_flight[owner]
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
            store.mark_pending(sweep.name, set(work_of))
        raise
    return outcomes


def _claim(work: Work, sweep: Sweep, store: ResultStore) -> tuple[Work | None, int]:
    """The part of ``work`` this process claimed in the store (None: another sweep took it
    all), and how many of its runs were taken elsewhere."""
    mine = [
        task
        for task in members(work)
        if store.claim(sweep.name, task.id, now_iso(), str(task.output_dir))
    ]
    taken_elsewhere = len(members(work)) - len(mine)
    if not mine:
        return None, taken_elsewhere
    return (mine[0] if len(mine) == 1 else RunBatch(tuple(mine))), taken_elsewhere


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
                work = plan_batches(tasks, engine.capacity, sweep.batch_runs)
                outcomes = _drive(sweep, work, engine, store, bar, counts)
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
