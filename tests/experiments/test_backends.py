"""The backend registry lists its backends in one place, and Ray's pool fits the cluster."""

from __future__ import annotations

import pytest

from gradleak.errors import UnknownNameError
from gradleak.experiments.backends import BACKENDS, BackendOptions, make_backend
from gradleak.experiments.backends.ray_cluster import runs_that_fit


def test_both_backends_are_registered_without_importing_them_by_hand() -> None:
    assert BACKENDS.names() == ["local", "ray"]
    with pytest.raises(UnknownNameError, match="known: local, ray"):
        make_backend("slurm", BackendOptions())


@pytest.mark.parametrize(
    ("resources", "cpus", "gpus", "fits"),
    [
        ({"CPU": 16.0}, 1.0, 0.0, 16),
        ({"CPU": 16.0}, 4.0, 0.0, 4),
        ({"CPU": 16.0, "GPU": 2.0}, 1.0, 1.0, 2),  # the GPUs are the scarcer
        ({"CPU": 16.0, "GPU": 2.0}, 1.0, 0.5, 4),
        ({"CPU": 2.0, "GPU": 8.0}, 1.0, 1.0, 2),  # the CPUs are
        ({"CPU": 16.0}, 1.0, 1.0, 1),  # no GPU yet: one run waits for the autoscaler
    ],
)
def test_the_ray_pool_is_sized_by_cpus_and_gpus(
    resources: dict[str, float], cpus: float, gpus: float, fits: int
) -> None:
    options = BackendOptions(cpus_per_run=cpus, gpus_per_run=gpus)
    assert runs_that_fit(resources, options) == fits
