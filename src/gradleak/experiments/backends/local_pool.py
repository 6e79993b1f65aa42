"""The ``local`` backend: a process pool on this machine (spawn, so CUDA and torch stay sane)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from gradleak.experiments.backends.base import (
    Backend,
    BackendOptions,
    RunOutcome,
    Work,
    failed_outcomes,
)
from gradleak.experiments.backends.sizing import check_devices, cuda_index, runs_that_fit
from gradleak.experiments.backends.worker import available_cpus, execute, init_worker

KILL_GRACE_S = 5.0


def local_gpus() -> int:
    """CUDA devices this process sees; torch is imported only when a sweep asks for a GPU."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LocalBackend(Backend):
    """``--workers`` processes, each with an equal share of the cores for torch's threads.

    With ``gpus_per_run`` set, the pool also holds no more runs than this machine's GPUs take
    (``0.25``: four per GPU); a ``cuda`` run on a machine without a GPU is refused up front.

    A worker that dies outright (killed, out of memory) breaks the whole pool; the runs then in
    flight are recorded as failed and a fresh pool takes the rest, so the sweep goes on. Workers
    die with this process (see :mod:`.worker`), and :meth:`close` kills the ones still busy.
    """

    def __init__(self, options: BackendOptions) -> None:
        cpus = available_cpus()
        self.capacity = max(1, options.workers or cpus)
        per_run = options.resources
        wants_gpu = any(cuda_index(d) is not None for d in options.devices)
        if wants_gpu or per_run.gpus_per_run > 0:
            gpus = float(local_gpus())
            check_devices(options.devices, gpus, per_run, "this machine", pinned=False)
            if per_run.gpus_per_run > 0:  # e.g. 0.25: four runs share the one GPU
                fits = runs_that_fit({"CPU": float(cpus), "GPU": gpus}, per_run)
                self.capacity = min(self.capacity, fits)
        self._threads = max(1, cpus // self.capacity)
        self._pool = self._new_pool()
        self._futures: dict[Future[list[RunOutcome]], Work] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.capacity,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(os.getpid(), self._threads),
        )

    def submit(self, work: Work) -> None:
        self._futures[self._pool.submit(execute, work)] = work

    def wait(self, timeout: float | None = None) -> list[RunOutcome]:
        finished, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = [
            outcome
            for future in finished
            for outcome in self._outcomes(future, self._futures.pop(future))
        ]
        if any(o.error and o.error.startswith("BrokenProcessPool") for o in outcomes):
            self._shutdown(self._pool)
            self._pool = self._new_pool()
        return outcomes

    @staticmethod
    def _outcomes(future: Future[list[RunOutcome]], work: Work) -> list[RunOutcome]:
        try:
            return future.result()
        except BrokenProcessPool:
            return failed_outcomes(
                work, "BrokenProcessPool: a worker process died (killed or out of memory)"
            )

    @staticmethod
    def _shutdown(pool: ProcessPoolExecutor) -> None:
        """Kill the pool's workers and reap them. ``shutdown`` alone lets a busy worker finish
        its run, which after SIGTERM or Ctrl-C would keep the sweep (and the run) going."""
        # The pool has no public handle on its processes; ``_processes`` is stable since 3.2.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(KILL_GRACE_S)

    def close(self) -> None:
        self._futures.clear()
        self._shutdown(self._pool)
