"""The slurm backend: chunks leave as job arrays, outcomes come back into the store, and what
Slurm cannot do is refused up front. Run without Slurm through submitit's Debug and Local
executors (the same arrays, in this process or in child processes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.backends import BackendOptions, RunTask, make_backend, slurm_jobs
from gradleak.experiments.backends.sizing import RunResources
from gradleak.experiments.backends.slurm_settings import SlurmSettings, parse_slurm
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import Sweep, expand
from gradleak.experiments.sweep_run import run_sweep

submitit = pytest.importorskip("submitit")

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "attack": {"name": "inverting_gradients", "iterations": 3},
    "metrics": {"lpips": False},
}


def scored_run(config: ExperimentConfig, output_dir: Path) -> dict[str, Any]:
    """Stands in for the runner: writes into its run folder and scores its batch size; batch
    size 3 raises."""
    if config.federation.batch_size == 3:
        raise RuntimeError("diverged\nsecond line")
    (output_dir / "ran").write_text(str(os.getpid()))
    return {"psnr_mean": float(config.federation.batch_size)}


def sweep_of(batch_sizes: list[int]) -> Sweep:
    return Sweep("s", expand(TINY, {"federation.batch_size": batch_sizes}, {}, {}))


def statuses(store: Path) -> dict[int, tuple[str, Any, Any]]:
    with ResultStore.open_existing(store) as db:
        return {
            r.config["federation"]["batch_size"]: (r.status, r.metrics, r.error) for r in db.runs()
        }


def test_a_chunk_leaves_as_one_job_array_and_every_outcome_reaches_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays: list[int] = []
    original = submitit.AutoExecutor.map_array

    def spy(self: Any, fn: Any, *iterables: Any) -> Any:
        arrays.append(len(iterables[0]))
        return original(self, fn, *iterables)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", spy)
    store, out = tmp_path / "r.db", tmp_path / "runs"
    options = BackendOptions(workers=3, address="debug")
    summary = run_sweep(sweep_of([1, 2, 3, 5]), store, "slurm", options, out, run=scored_run)

    assert (summary.done, summary.failed) == (3, 1)
    assert arrays[0] == 3 and sum(arrays) == 4  # the first chunk is one array of three
    got = statuses(store)
    assert got[1] == ("done", {"psnr_mean": 1.0}, None)
    assert got[5] == ("done", {"psnr_mean": 5.0}, None)
    assert got[3][0] == "failed" and got[3][2] == "RuntimeError: diverged"
    assert len(list((out / "s").glob("*/ran"))) == 3
    assert (out / "s" / slurm_jobs.JOBS_FOLDER).is_dir()  # submitit's logs beside the runs


@pytest.mark.slow
def test_local_job_arrays_run_the_task_in_a_child_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The array task is a fresh interpreter: it finds this module (and gradleak) by path.
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, *sys.path]))
    monkeypatch.setattr(slurm_jobs, "POLL_S", 0.2)
    store, out = tmp_path / "r.db", tmp_path / "runs"
    options = BackendOptions(workers=2, address="local")
    summary = run_sweep(sweep_of([2]), store, "slurm", options, out, run=scored_run)

    assert (summary.done, summary.failed) == (1, 0)
    assert statuses(store)[2] == ("done", {"psnr_mean": 2.0}, None)
    ran = next((out / "s").glob("*/ran")).read_text()
    assert int(ran) != os.getpid()


class KilledJob:
    """What submitit hands back for a task Slurm killed: ``result()`` raises."""

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        raise submitit.core.utils.UncompletedJobError(
            "Job 17_3 (task: 0) with path /x/17_3_0_result.pkl\nhas not produced any output "
            "(state: TIMEOUT)"
        )


def test_a_task_slurm_killed_is_a_failed_run_in_one_line(tmp_path: Path) -> None:
    sweep = sweep_of([1])
    task = RunTask(sweep.runs[0].id, sweep.runs[0].config, tmp_path / "run")
    (outcome,) = slurm_jobs.SlurmBackend._outcomes(KilledJob(), task)
    assert outcome.status == "failed" and outcome.id == task.id
    assert outcome.error == "UncompletedJobError: Job 17_3 (task: 0) with path /x/17_3_0_result.pkl"
    assert outcome.artifacts_path == str(tmp_path / "run")


@pytest.mark.parametrize(
    ("options", "device", "message"),
    [
        (
            BackendOptions(address="debug", resources=RunResources(gpus_per_run=0.25)),
            "cpu",
            "Slurm allocates whole GPUs",
        ),
        (BackendOptions(address="debug"), "cuda", "device cuda but gpus_per_run is 0"),
        (
            BackendOptions(address="10.0.0.1:6379"),
            "cpu",
            "must be auto \\(Slurm\\), local or debug",
        ),
    ],
)
def test_what_slurm_cannot_do_is_refused_before_the_store(
    tmp_path: Path, options: BackendOptions, device: str, message: str
) -> None:
    store = tmp_path / "r.db"
    sweep = Sweep("s", expand(TINY, {}, {}, {"device": device}))
    with pytest.raises(ConfigError, match=message):
        run_sweep(sweep, store, "slurm", options)
    assert not store.exists()


def test_without_sbatch_the_slurm_cluster_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slurm_jobs.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="no Slurm here \\(sbatch not found\\); --address local"):
        make_backend("slurm", BackendOptions())


def test_without_submitit_the_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ConfigError, match=r"pip install 'gradleak\[slurm\]'"):
        make_backend("slurm", BackendOptions(address="debug"))


def test_whole_gpus_and_the_slurm_settings_reach_the_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slurm_jobs.shutil, "which", lambda name: "/usr/bin/sbatch")
    settings = parse_slurm({"partition": "gpu", "timeout_min": 30, "mem_gb": 8})
    options = BackendOptions(
        workers=8,
        resources=RunResources(cpus_per_run=2, gpus_per_run=1),
        devices=("cuda",),
        slurm=settings,
    )
    backend = make_backend("slurm", options)
    assert backend.capacity == 8
    params = backend._parameters  # type: ignore[attr-defined]
    assert params == {
        "timeout_min": 30,
        "cpus_per_task": 2,
        "gpus_per_node": 1,
        "slurm_array_parallelism": 8,
        "mem_gb": 8.0,
        "slurm_partition": "gpu",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"timeout": 10}, "key 'timeout' does not exist; known: partition, account"),
        ({"timeout_min": 0}, "timeout_min: Input should be greater than or equal to 1"),
        ({"partition": ""}, "partition: String should have at least 1 character"),
        ("gpu", "must map Slurm settings to values"),
    ],
)
def test_bad_slurm_settings_are_one_line(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_slurm(raw)
    assert parse_slurm(None) == SlurmSettings()
