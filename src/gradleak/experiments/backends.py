"""Where a sweep's runs execute: a registry of backends behind one small interface.

The parent process owns the results store and is its only writer; a backend only moves
:class:`RunTask` objects out to workers and :class:`RunOutcome` objects back. Keeping workers
away from the database means no write contention, no locks held by a process that may be
killed, and the same store code for a laptop pool and a Ray cluster.
"""

from __future__ import annotations

import os
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gradleak.config import ExperimentConfig
from gradleak.registry import Registry

RunFunction = Callable[[ExperimentConfig, Path], dict[str, Any]]


def default_run_function(config: ExperimentConfig, output_dir: Path) -> dict[str, Any]:
    """The real runner, imported late so that a worker pays for torch only when it runs."""
    from gradleak.experiments.runner import run_experiment

    return run_experiment(config, output_dir)


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to run one experiment; picklable."""

    id: str
    config: ExperimentConfig
    output_dir: Path
    run: RunFunction = default_run_function


@dataclass(frozen=True)
class RunOutcome:
    """What came back from one run: metrics when it finished, a one-line error when it raised."""

    id: str
    status: str
    started: str
    finished: str
    wall_seconds: float
    metrics: dict[str, Any] | None = None
    error: str | None = None
    artifacts_path: str = field(default="")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def one_line(exc: BaseException) -> str:
    """An exception as one line for the store; the full traceback goes to the run's folder."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def execute(task: RunTask) -> RunOutcome:
    """Run one task in the current process; any exception becomes a failed outcome."""
    started, t0 = now_iso(), time.perf_counter()
    task.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        metrics = task.run(task.config, task.output_dir)
    except Exception as exc:
        (task.output_dir / "error.log").write_text(traceback.format_exc())
        return RunOutcome(
            task.id,
            "failed",
            started,
            now_iso(),
            time.perf_counter() - t0,
            error=one_line(exc),
            artifacts_path=str(task.output_dir),
        )
    return RunOutcome(
        task.id,
        "done",
        started,
        now_iso(),
        time.perf_counter() - t0,
        metrics=dict(metrics),
        artifacts_path=str(task.output_dir),
    )


def limit_threads(threads: int) -> None:
    """Cap torch's intra-op threads so that concurrent workers share the cores, not fight."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Backend(ABC):
    """Runs tasks somewhere; at most :attr:`capacity` are in flight at once."""

    capacity: int

    @abstractmethod
    def submit(self, task: RunTask) -> None:
        """Start a task; the caller never submits more than ``capacity`` at once."""

    @abstractmethod
    def wait(self) -> list[RunOutcome]:
        """Block until at least one submitted task has finished; return the finished ones."""

    @abstractmethod
    def close(self) -> None:
        """Release workers; tasks still in flight are abandoned (the store will redo them)."""


@dataclass(frozen=True)
class BackendOptions:
    """Command-line knobs shared by every backend; each uses the ones that apply to it."""

    workers: int | None = None
    address: str = "auto"
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0


BACKENDS: Registry[Callable[[BackendOptions], Backend]] = Registry("sweep backend")


def make_backend(name: str, options: BackendOptions) -> Backend:
    """Build a registered backend; importing the modules registers ``local`` and ``ray``."""
    from gradleak.experiments import backends_local, backends_ray  # noqa: F401

    return BACKENDS.get(name)(options)
