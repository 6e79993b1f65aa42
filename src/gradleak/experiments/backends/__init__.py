"""Where a sweep's runs execute: the registry of backends and the one call that builds one.

The interface lives in :mod:`.base`, the worker side in :mod:`.worker`, and each backend in its
own module; this package sits above them all and lists them here, in one place, so that no
backend module imports the registry that names it (no plugin-discovery circle).
"""

from __future__ import annotations

from collections.abc import Callable

from gradleak.experiments.backends.base import (
    Backend,
    BackendOptions,
    RunBatch,
    RunFunction,
    RunOutcome,
    RunTask,
    Work,
    default_run_function,
    members,
    now_iso,
    one_line,
)
from gradleak.experiments.backends.local_pool import LocalBackend
from gradleak.experiments.backends.ray_cluster import RayBackend
from gradleak.experiments.backends.slurm_jobs import SlurmBackend
from gradleak.registry import Registry

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "RunBatch",
    "RunFunction",
    "RunOutcome",
    "RunTask",
    "Work",
    "default_run_function",
    "make_backend",
    "members",
    "now_iso",
    "one_line",
]

BACKENDS: Registry[Callable[[BackendOptions], Backend]] = Registry("sweep backend")
BACKENDS.register("local")(LocalBackend)
BACKENDS.register("ray")(RayBackend)  # Ray itself is imported only when this one is built
BACKENDS.register("slurm")(SlurmBackend)  # submitit likewise


def make_backend(name: str, options: BackendOptions) -> Backend:
    """Build a registered backend (``local``, ``ray`` or ``slurm``) with the sweep's options."""
    return BACKENDS.get(name)(options)
