"""The worker side of a backend: run one task, share the cores, and die with the parent.

A worker whose sweep was SIGKILLed must not live on: it holds hundreds of MB and keeps
writing into a run folder that the resumed sweep redoes. On Linux the kernel delivers SIGKILL
to the worker when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a watchdog thread polls
the parent's pid. Workers ignore SIGINT and SIGTERM, which a terminal, ``timeout`` or Slurm
send to the whole process group: the parent records what finished and then kills them itself,
so no worker prints a traceback, and no run in flight is recorded as failed because its worker
died first.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
import traceback

from gradleak.experiments.backends.base import (
    RunBatch,
    RunOutcome,
    RunTask,
    Work,
    now_iso,
    one_line,
)

PR_SET_PDEATHSIG = 1
WATCHDOG_PERIOD_S = 0.5


def execute_one(task: RunTask) -> RunOutcome:
    """Run one task in the current process; any exception becomes a failed outcome."""
    started, t0 = now_iso(), time.perf_counter()
    try:
        task.output_dir.mkdir(parents=True, exist_ok=True)
        metrics = task.run(task.config, task.output_dir)
    except Exception as exc:
        _keep_traceback(task, traceback.format_exc())
        return _failed(task, started, time.perf_counter() - t0, exc)
    return RunOutcome(
        task.id,
        "done",
        started,
        now_iso(),
        time.perf_counter() - t0,
        metrics=dict(metrics),
        artifacts_path=str(task.output_dir),
    )


def _keep_traceback(task: RunTask, text: str) -> None:
    # A full disk or a vanished folder: the store still gets the one line.
    with contextlib.suppress(OSError):
        (task.output_dir / "error.log").write_text(text)


def _failed(task: RunTask, started: str, seconds: float, exc: BaseException) -> RunOutcome:
    return RunOutcome(
        task.id,
        "failed",
        started,
        now_iso(),
        seconds,
        error=one_line(exc),
        artifacts_path=str(task.output_dir),
    )


def execute_batch(batch: RunBatch) -> list[RunOutcome]:
    """Run a batch's tasks together (``experiments.batched_runner``); one outcome each."""
    from gradleak.experiments.batched_runner import run_experiments_batched

    started = now_iso()
    tasks = batch.tasks
    try:
        for task in tasks:
            task.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [_failed(task, started, 0.0, exc) for task in tasks]
    results = run_experiments_batched([t.config for t in tasks], [t.output_dir for t in tasks])
    outcomes = []
    for task, result in zip(tasks, results, strict=True):
        if result.error is not None:
            _keep_traceback(task, result.traceback)
            outcomes.append(_failed(task, started, result.seconds, result.error))
            continue
        outcomes.append(
            RunOutcome(
                task.id,
                "done",
                started,
                now_iso(),
                result.seconds,
                metrics=dict(result.metrics or {}),
                artifacts_path=str(task.output_dir),
            )
        )
    return outcomes


def execute(work: Work) -> list[RunOutcome]:
    """Run one task, or a batch of them, in the current process; the outcome of each run."""
    if isinstance(work, RunBatch):
        return execute_batch(work)
    return [execute_one(work)]


def limit_threads(threads: int) -> None:
    """Cap torch's intra-op threads so that concurrent workers share the cores, not fight."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def execute_with_threads(work: Work, threads: int) -> list[RunOutcome]:
    """The entry point of a backend whose workers are started by someone else (a Ray worker,
    a Slurm array task): share the cores, then run the work."""
    limit_threads(threads)
    return execute(work)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _ask_kernel_to_kill_on_parent_death() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``; False where the platform has no such call."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_PERIOD_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does, whatever kills the parent."""
    if not _ask_kernel_to_kill_on_parent_death():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def init_worker(parent: int, threads: int) -> None:
    """Pool initializer: tie the worker's life to ``parent``, leave Ctrl-C and SIGTERM to it,
    share the cores."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    limit_threads(threads)
