"""The backend registry lists its backends in one place, and a pool fits its CPUs and GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gradleak.errors import ConfigError, UnknownNameError
from gradleak.experiments.backends import BACKENDS, BackendOptions, local_pool, make_backend
from gradleak.experiments.backends.sizing import (
    RunResources,
    check_devices,
    parse_resources,
    runs_that_fit,
    with_overrides,
)
from gradleak.experiments.sweep import Sweep, expand, load_sweep
from gradleak.experiments.sweep_run import run_sweep

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "attack": {"name": "inverting_gradients", "iterations": 3},
    "metrics": {"lpips": False},
}


def test_both_backends_are_registered_without_importing_them_by_hand() -> None:
    assert BACKENDS.names() == ["local", "ray", "slurm"]
    with pytest.raises(UnknownNameError, match="known: local, ray, slurm"):
        make_backend("pbs", BackendOptions())


@pytest.mark.parametrize(
    ("resources", "cpus", "gpus", "fits"),
    [
        ({"CPU": 16.0}, 1.0, 0.0, 16),
        ({"CPU": 16.0}, 4.0, 0.0, 4),
        ({"CPU": 16.0, "GPU": 2.0}, 1.0, 1.0, 2),  # the GPUs are the scarcer
        ({"CPU": 16.0, "GPU": 2.0}, 1.0, 0.5, 4),
        ({"CPU": 16.0, "GPU": 1.0}, 1.0, 0.25, 4),  # four small attacks share one GPU
        ({"CPU": 16.0, "GPU": 1.0}, 0.5, 1 / 3, 3),  # 1 / (1/3) is 2.9999...: still three
        ({"CPU": 2.0, "GPU": 8.0}, 1.0, 1.0, 2),  # the CPUs are
        ({"CPU": 2.0, "GPU": 1.0}, 0.5, 0.125, 4),
    ],
)
def test_the_pool_is_sized_by_cpus_and_gpus(
    resources: dict[str, float], cpus: float, gpus: float, fits: int
) -> None:
    per_run = RunResources(cpus_per_run=cpus, gpus_per_run=gpus)
    assert runs_that_fit(resources, per_run) == fits


@pytest.mark.parametrize(
    ("resources", "per_run"),
    [
        ({"CPU": 16.0}, {"gpus_per_run": 0.25}),  # no GPU at all: it would queue for ever
        ({"CPU": 2.0, "GPU": 1.0}, {"cpus_per_run": 4}),
        ({"CPU": 8.0, "GPU": 1.0}, {"gpus_per_run": 2}),
    ],
)
def test_a_run_that_fits_nowhere_is_refused_not_queued(
    resources: dict[str, float], per_run: dict[str, float]
) -> None:
    with pytest.raises(ConfigError, match="one run needs"):
        runs_that_fit(resources, RunResources(**per_run))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"gpus_per_run": -0.5}, r"gpus_per_run: Input should be greater than or equal to 0"),
        ({"gpus_per_run": 1.5}, "gpus_per_run 1.5 above 1 must be a whole number"),
        ({"cpus_per_run": 0}, "cpus_per_run: Input should be greater than 0"),
        ({"gpu_per_run": 0.5}, "key 'gpu_per_run' does not exist; known: cpus_per_run"),
        ({"gpus_per_run": "a quarter"}, "gpus_per_run: Input should be a valid number"),
        ({"gpus_per_run": float("nan")}, "gpus_per_run: Input should be a finite number"),
        ([0.25], "must map cpus_per_run/gpus_per_run to numbers"),
    ],
)
def test_bad_resources_are_one_line(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_resources(raw)
    assert "\n" not in str(caught.value)


def test_fractional_and_whole_gpus_are_accepted_and_flags_override_the_file() -> None:
    assert parse_resources({"gpus_per_run": 0.25}).gpus_per_run == 0.25
    assert parse_resources({"gpus_per_run": 2, "cpus_per_run": 0.5}).cpus_per_run == 0.5
    assert parse_resources(None) == RunResources()
    merged = with_overrides(RunResources(gpus_per_run=0.25), None, 0.5)
    assert merged == RunResources(gpus_per_run=0.5)
    with pytest.raises(ConfigError, match="above 1 must be a whole number"):
        with_overrides(RunResources(), 2.5, None)


@pytest.mark.parametrize(
    ("devices", "gpus", "per_run_gpus", "pinned", "message"),
    [
        (("cpu", "cuda"), 0.0, 0.25, True, "runs ask for device cuda but the cluster has no GPU"),
        (("cuda:0",), 0.0, 0.0, False, "runs ask for device cuda:0 but the cluster has no GPU"),
        (("cuda",), 2.0, 0.0, True, "gpus_per_run is 0, so the cluster gives them no GPU"),
        (("cuda:1",), 2.0, 0.5, True, "device cuda:1 but each run sees 1 GPU"),
        (("cuda:2",), 2.0, 0.0, False, "device cuda:2 but each run sees 2 GPU"),
    ],
)
def test_a_cuda_run_without_a_gpu_for_it_is_refused_in_one_line(
    devices: tuple[str, ...], gpus: float, per_run_gpus: float, pinned: bool, message: str
) -> None:
    per_run = RunResources(gpus_per_run=per_run_gpus)
    with pytest.raises(ConfigError, match=message):
        check_devices(devices, gpus, per_run, "the cluster", pinned)


@pytest.mark.parametrize(
    ("devices", "gpus", "per_run_gpus", "pinned"),
    [
        (("cpu", "auto"), 0.0, 0.0, True),  # auto falls back to the CPU by design
        (("cuda",), 1.0, 0.25, True),
        (("cuda:1",), 4.0, 2.0, True),
        (("cuda:1",), 2.0, 0.0, False),
    ],
)
def test_runs_that_can_get_their_device_pass(
    devices: tuple[str, ...], gpus: float, per_run_gpus: float, pinned: bool
) -> None:
    check_devices(devices, gpus, RunResources(gpus_per_run=per_run_gpus), "the cluster", pinned)


def test_a_local_cuda_sweep_on_a_machine_without_gpu_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_pool, "local_gpus", lambda: 0)
    with pytest.raises(ConfigError, match="device cuda but this machine has no GPU"):
        make_backend("local", BackendOptions(workers=1, devices=("cuda",)))


def test_the_local_pool_holds_as_many_runs_as_its_gpus_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_pool, "local_gpus", lambda: 1)
    monkeypatch.setattr(local_pool, "available_cpus", lambda: 16)
    per_run = RunResources(gpus_per_run=0.25)
    backend = make_backend("local", BackendOptions(resources=per_run, devices=("cuda",)))
    try:
        assert backend.capacity == 4
    finally:
        backend.close()


def test_a_sweep_file_carries_its_resources(tmp_path: Path) -> None:
    spec = {"base": None, "set": {"attack.iterations": 1}, "resources": {"gpus_per_run": 0.25}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert load_sweep(path).resources == RunResources(gpus_per_run=0.25)
    path.write_text(yaml.safe_dump({**spec, "resources": {"gpus_per_run": 1.5}}))
    with pytest.raises(ConfigError, match=r"s.yaml: resources: gpus_per_run 1.5 above 1"):
        load_sweep(path)


def test_a_cuda_sweep_is_refused_before_the_store_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_pool, "local_gpus", lambda: 0)
    sweep = Sweep("gpu", expand(TINY, {}, {}, {"device": "cuda"}))
    store = tmp_path / "r.db"
    with pytest.raises(ConfigError, match="runs ask for device cuda but this machine has no GPU"):
        run_sweep(sweep, store, "local", BackendOptions(workers=1))
    assert not store.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus-per-run", "1.5"], "resources: gpus_per_run 1.5 above 1 must be a whole number"),
        (["--cpus-per-run", "0"], "resources.cpus_per_run: Input should be greater than 0"),
    ],
)
def test_the_command_line_flags_are_validated_like_the_file(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from gradleak.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"set": TINY, "resources": {"gpus_per_run": 0.25}}))
    store = tmp_path / "r.db"
    result = CliRunner().invoke(app, ["sweep", str(path), "--store", str(store), *flags])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == message
    assert not store.exists()


class FakeRay:
    """Just enough of Ray for the backend's start-up: a cluster of given resources."""

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources
        self.task_options: dict[str, object] = {}
        self.shut = False

    def init(self, **kwargs: object) -> None:
        pass

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, fn: object) -> FakeRay:
        return self

    def options(self, **kwargs: object) -> FakeRay:
        self.task_options = kwargs
        return self

    def shutdown(self) -> None:
        self.shut = True


def test_the_ray_backend_reserves_fractional_gpus_and_refuses_a_gpu_less_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gradleak.experiments.backends import ray_cluster

    ray = FakeRay({"CPU": 16.0, "GPU": 2.0})
    monkeypatch.setattr(ray_cluster, "_import_ray", lambda: ray)
    per_run = RunResources(cpus_per_run=1, gpus_per_run=0.25)
    backend = make_backend("ray", BackendOptions(resources=per_run, devices=("cuda",)))
    assert backend.capacity == 8  # 2 GPUs, four runs each
    assert ray.task_options == {"num_cpus": 1.0, "num_gpus": 0.25, "max_retries": 0}
    capped = make_backend("ray", BackendOptions(workers=3, resources=per_run))
    assert capped.capacity == 3

    bare = FakeRay({"CPU": 16.0})
    monkeypatch.setattr(ray_cluster, "_import_ray", lambda: bare)
    with pytest.raises(ConfigError, match="device cuda but the Ray cluster at auto has no GPU"):
        make_backend("ray", BackendOptions(resources=per_run, devices=("cpu", "cuda")))
    assert bare.shut  # the driver leaves the cluster it joined
