"""Which of a sweep's runs one worker takes together (``batch_runs`` in the sweep file).

Runs that differ only in their seed share model, data shapes, protocol and attack, so their
attacks can usually be optimised as one batch (``experiments.batched_runner``; the worker
finds out, and runs the others one after another). Planning here needs no torch: it reads
the configs only. Each such family is cut into chunks of at most ``limit`` runs, and into at
least as many chunks as the backend has workers, so batching never leaves a worker idle that
the runs one by one would have kept busy. Runs with their own run function (a test's stand-in)
are never batched: the batch runner is the real one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from gradleak.experiments.backends.base import RunBatch, RunTask, Work, default_run_function


def family(task: RunTask) -> str:
    """What runs must share to be batched: everything in their config but the seed."""
    return json.dumps(task.config.model_dump(mode="json", exclude={"seed"}), sort_keys=True)


def plan_batches(tasks: Sequence[RunTask], workers: int, limit: int) -> list[Work]:
    """``tasks`` as work for ``workers`` workers: families of seed-only siblings in chunks of
    at most ``limit`` (as even as the worker count allows), the rest one by one; in the order
    each family's first run came."""
    if limit <= 1:
        return list(tasks)
    families: dict[str, list[RunTask]] = {}
    order: list[str | RunTask] = []
    for task in tasks:
        if task.run is not default_run_function:
            order.append(task)
            continue
        key = family(task)
        if key not in families:
            families[key] = []
            order.append(key)
        families[key].append(task)
    work: list[Work] = []
    for entry in order:
        if isinstance(entry, RunTask):
            work.append(entry)
            continue
        members = families[entry]
        chunks = max(math.ceil(len(members) / limit), min(workers, len(members)))
        size = math.ceil(len(members) / chunks)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            work.append(chunk[0] if len(chunk) == 1 else RunBatch(tuple(chunk)))
    return work
