"""The ``ray`` backend: one Ray task per run, on a local ``ray start --head`` or a real cluster.

Ray is an optional extra (``gradleak[sweep]``) and is imported only here, when chosen.
"""

from __future__ import annotations

import socket
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
from gradleak.experiments.backends.sizing import check_devices, runs_that_fit
from gradleak.experiments.backends.worker import execute_with_threads

CONNECT_TIMEOUT_S = 5.0


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'gradleak[sweep]'") from None
    return ray


def _check_answers(address: str) -> None:
    """Fail in seconds, not minutes, when a HOST:PORT address has nobody listening."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"ray address {address!r} must be 'auto' or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"ray address {address} does not answer ({exc.strerror or exc})"
        ) from None


class RayBackend(Backend):
    """Runs each task as a Ray task needing ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    ``capacity`` is as many runs as the cluster's CPUs and GPUs hold at once (four runs per GPU
    at ``gpus_per_run: 0.25``), so that the store's ``running`` status means running, not
    queued; ``--workers`` caps it lower. Ray hands each task only the GPUs it reserved
    (``CUDA_VISIBLE_DEVICES``), so a ``device: cuda`` run needs ``gpus_per_run > 0``; a sweep
    that asks for a GPU the cluster does not have is refused before any run is claimed.
    """

    def __init__(self, options: BackendOptions) -> None:
        self._ray = ray = _import_ray()
        if options.address != "auto":
            _check_answers(options.address)
        host = options.address.removeprefix("ray://").rpartition(":")[0]
        # A cluster on this machine's loopback is joined on loopback too, so that the driver
        # never advertises (or dials) another interface of the machine.
        local = {"_node_ip_address": host} if host in LOOPBACK_HOSTS else {}
        try:
            ray.init(address=options.address, log_to_driver=False, logging_level="ERROR", **local)
        except (ConnectionError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot connect to Ray at {options.address}: {one_line(exc)}"
            ) from None
        try:
            available = ray.cluster_resources()
            where = f"the Ray cluster at {options.address}"
            check_devices(
                options.devices, float(available.get("GPU", 0.0)), options.resources, where, True
            )
            fits = runs_that_fit(available, options.resources)
        except ConfigError:
            ray.shutdown()
            raise
        self.capacity = min(options.workers, fits) if options.workers else fits
        per_run = options.resources
        self._remote = ray.remote(execute_with_threads).options(
            num_cpus=per_run.cpus_per_run, num_gpus=per_run.gpus_per_run, max_retries=0
        )
        self._threads = max(1, int(per_run.cpus_per_run))
        self._refs: dict[Any, Work] = {}

    def submit(self, work: Work) -> None:
        self._refs[self._remote.remote(work, self._threads)] = work

    def wait(self, timeout: float | None = None) -> list[RunOutcome]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        return [o for ref in ready for o in self._outcomes(ref, self._refs.pop(ref))]

    def _outcomes(self, ref: Any, work: Work) -> list[RunOutcome]:
        try:
            outcomes: list[RunOutcome] = self._ray.get(ref)
        except Exception as exc:  # a worker crash or lost node: the runs failed, the sweep goes on
            return failed_outcomes(work, one_line(exc))
        return outcomes

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._ray.shutdown()
