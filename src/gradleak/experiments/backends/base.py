"""What a sweep backend moves, and the interface every backend implements.

The parent process owns the results store and is its only writer; a backend only moves
:class:`RunTask` objects out to workers and :class:`RunOutcome` objects back. Keeping workers
away from the database means no write contention, no locks held by a process that may be
killed, and the same store code for a laptop pool and a Ray cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gradleak.config import ExperimentConfig
from gradleak.experiments.backends.sizing import RunResources
from gradleak.experiments.backends.slurm_settings import SlurmSettings

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
class RunBatch:
    """Runs one worker takes together, their attacks optimised as one batch where they can
    (``experiments.batched_runner``); planned by ``experiments.run_batches``."""

    tasks: tuple[RunTask, ...]

    @property
    def id(self) -> str:
        return self.tasks[0].id

    @property
    def output_dir(self) -> Path:
        return self.tasks[0].output_dir


Work = RunTask | RunBatch
"""What a backend moves to one worker: one run, or a batch of runs."""


def members(work: Work) -> tuple[RunTask, ...]:
    """The runs in ``work``."""
    return work.tasks if isinstance(work, RunBatch) else (work,)


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


def failed_outcomes(work: Work, error: str) -> list[RunOutcome]:
    """The outcomes of runs whose worker never reported (killed, crashed, node lost): failed
    now, with ``error`` as their one line, their folders kept for the next attempt."""
    stamp = now_iso()
    return [
        RunOutcome(
            task.id, "failed", stamp, stamp, 0.0, error=error, artifacts_path=str(task.output_dir)
        )
        for task in members(work)
    ]


def one_line(exc: BaseException) -> str:
    """An exception as one line for the store; the full traceback goes to the run's folder."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


class Backend(ABC):
    """Runs tasks somewhere; at most :attr:`capacity` are in flight at once."""

    capacity: int

    @abstractmethod
    def submit(self, work: Work) -> None:
        """Start a run or a batch of runs; the caller never has more than ``capacity`` in
        flight at once."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[RunOutcome]:
        """Block until at least one submitted work has finished or ``timeout`` seconds have
        passed; return the outcomes of every run in the finished ones (none on a timeout). The timeout lets the driver
        keep its heartbeat in the store while long runs go on."""

    @abstractmethod
    def close(self) -> None:
        """Stop every worker now; tasks still in flight are abandoned (the store redoes them).

        Workers must not outlive this call: a worker left running keeps writing into a run
        folder that the next invocation redoes."""


@dataclass(frozen=True)
class BackendOptions:
    """Knobs shared by every backend; each uses the ones that apply to it.

    ``resources`` is what one run reserves (the sweep file's ``resources`` with the command
    line's flags on top); ``devices`` lists the devices the sweep's runs ask for, so that a
    backend refuses a ``cuda`` run it cannot give a GPU before anything is claimed; ``slurm``
    is the sweep file's ``slurm`` section, read by the ``slurm`` backend only.
    """

    workers: int | None = None
    address: str = "auto"
    resources: RunResources = field(default_factory=RunResources)
    devices: tuple[str, ...] = ()
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
