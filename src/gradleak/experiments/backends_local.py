"""The ``local`` backend: a process pool on this machine (spawn, so CUDA and torch stay sane)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from gradleak.experiments.backends import (
    BACKENDS,
    Backend,
    BackendOptions,
    RunOutcome,
    RunTask,
    available_cpus,
    execute,
    limit_threads,
    now_iso,
)


class LocalBackend(Backend):
    """``--workers`` processes, each with an equal share of the cores for torch's threads.

    A worker that dies outright (killed, out of memory) breaks the whole pool; the runs then in
    flight are recorded as failed and a fresh pool takes the rest, so the sweep goes on.
    """

    def __init__(self, options: BackendOptions) -> None:
        cpus = available_cpus()
        self.capacity = max(1, options.workers or cpus)
        self._threads = max(1, cpus // self.capacity)
        self._pool = self._new_pool()
        self._futures: dict[Future[RunOutcome], RunTask] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.capacity,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=limit_threads,
            initargs=(self._threads,),
        )

    def submit(self, task: RunTask) -> None:
        self._futures[self._pool.submit(execute, task)] = task

    def wait(self) -> list[RunOutcome]:
        finished, _ = wait(self._futures, return_when=FIRST_COMPLETED)
        outcomes = [self._outcome(future, self._futures.pop(future)) for future in finished]
        if any(o.error and o.error.startswith("BrokenProcessPool") for o in outcomes):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return outcomes

    @staticmethod
    def _outcome(future: Future[RunOutcome], task: RunTask) -> RunOutcome:
        try:
            return future.result()
        except BrokenProcessPool:
            stamp = now_iso()
            return RunOutcome(
                task.id,
                "failed",
                stamp,
                stamp,
                0.0,
                error="BrokenProcessPool: a worker process died (killed or out of memory)",
                artifacts_path=str(task.output_dir),
            )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


BACKENDS.register("local")(LocalBackend)
