"""The ``slurm`` backend: each chunk of a sweep goes to Slurm as one job array (via submitit).

The driver submits up to :attr:`capacity` runs, then waits; everything submitted since the last
wait leaves as one array (one ``sbatch``, not hundreds), and each array task runs one run (or one
batch of runs) through :func:`.worker.execute_with_threads`, the entry point the Ray backend uses
too. The task's :class:`RunOutcome` list comes back through submitit's pickles in the sweep's run folder
(which must sit on a file system the nodes share, as for Ray), and the parent, the store's only
writer, records it. A task Slurm kills (time limit, memory) is recorded as failed in one line.

On Slurm a claimed run is *submitted*: it may wait in Slurm's queue, which the store cannot see.
``--address local`` (submitit's LocalExecutor) or ``debug`` (in this process, at its own thread
count) run the same arrays without Slurm, to try a sweep file. submitit is an optional extra (``gradleak[slurm]``), imported
only when this backend is built.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from gradleak.errors import ConfigError
from gradleak.experiments.backends.base import (
    Backend,
    BackendOptions,
    RunOutcome,
    Work,
    failed_outcomes,
    one_line,
)
from gradleak.experiments.backends.sizing import check_devices
from gradleak.experiments.backends.worker import execute, execute_with_threads

DEFAULT_CHUNK = 256
"""Runs in flight (and so the largest array) unless ``--workers`` says otherwise."""
POLL_S = 1.0
CLUSTERS = {"auto": "slurm", "slurm": "slurm", "local": "local", "debug": "debug"}
JOBS_FOLDER = "_submitit"


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "the slurm backend needs submitit: pip install 'gradleak[slurm]'"
        ) from None
    return submitit


def _cluster(address: str) -> str:
    cluster = CLUSTERS.get(address)
    if cluster is None:
        raise ConfigError(f"slurm backend address {address!r} must be auto (Slurm), local or debug")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "no Slurm here (sbatch not found); --address local runs the job arrays as local "
            "processes"
        )
    return cluster


class SlurmBackend(Backend):
    """One job array per chunk of submitted runs; each array task is one run.

    Slurm hands out whole GPUs only, so ``gpus_per_run`` must be 0 or a whole number here (the
    Ray backend shares a GPU among runs), and a ``device: cuda`` run needs ``gpus_per_run >= 1``.
    """

    def __init__(self, options: BackendOptions) -> None:
        self._submitit = _import_submitit()
        self._cluster = _cluster(options.address)
        per_run = options.resources
        if not float(per_run.gpus_per_run).is_integer():
            raise ConfigError(
                f"gpus_per_run {per_run.gpus_per_run:g}: Slurm allocates whole GPUs; use 0, "
                "a whole number, or the ray backend to share a GPU among runs"
            )
        check_devices(options.devices, math.inf, per_run, "Slurm", pinned=True)
        self.capacity = options.workers or DEFAULT_CHUNK
        self._threads = max(1, math.ceil(per_run.cpus_per_run))
        self._parameters: dict[str, Any] = {
            "timeout_min": options.slurm.timeout_min,
            "cpus_per_task": self._threads,
            "gpus_per_node": int(per_run.gpus_per_run),
            "slurm_array_parallelism": options.slurm.array_parallelism or self.capacity,
        }
        if options.slurm.mem_gb is not None:
            self._parameters["mem_gb"] = options.slurm.mem_gb
        for key in ("partition", "account"):
            value = getattr(options.slurm, key)
            if value is not None:
                self._parameters[f"slurm_{key}"] = value
        self._queued: list[Work] = []
        self._jobs: dict[str, tuple[Any, Work]] = {}

    def submit(self, work: Work) -> None:
        """Queue the work; it leaves with the rest of its chunk at the next :meth:`wait`."""
        self._queued.append(work)

    def _executor(self, folder: Path) -> Any:
        executor = self._submitit.AutoExecutor(folder=folder / "%j", cluster=self._cluster)
        executor.update_parameters(name="gradleak", **self._parameters)
        return executor

    def _flush(self) -> None:
        """Send the queued tasks as one job array; logs go beside their run folders."""
        if not self._queued:
            return
        tasks, self._queued = self._queued, []
        executor = self._executor(tasks[0].output_dir.parent / JOBS_FOLDER)
        if self._cluster == "debug":  # in this very process: leave its torch threads alone
            jobs = executor.map_array(execute, tasks)
        else:
            jobs = executor.map_array(execute_with_threads, tasks, [self._threads] * len(tasks))
        for job, task in zip(jobs, tasks, strict=True):
            self._jobs[task.id] = (job, task)

    def wait(self, timeout: float | None = None) -> list[RunOutcome]:
        self._flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            finished = [tid for tid, (job, _) in self._jobs.items() if job.done()]
            if finished or not self._jobs:
                return [o for tid in finished for o in self._outcomes(*self._jobs.pop(tid))]
            if deadline is not None and time.monotonic() >= deadline:
                return []
            time.sleep(POLL_S)

    @staticmethod
    def _outcomes(job: Any, work: Work) -> list[RunOutcome]:
        try:
            outcomes: list[RunOutcome] = job.result()
        except Exception as exc:  # killed by Slurm (time, memory) or its node lost
            return failed_outcomes(work, one_line(exc))
        return outcomes

    def close(self) -> None:
        """Cancel every array task still queued or running (``scancel``)."""
        self._queued.clear()
        for job, _ in self._jobs.values():
            job.cancel(check=False)
        self._jobs.clear()
