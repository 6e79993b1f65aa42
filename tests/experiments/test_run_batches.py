"""Seed siblings of a sweep run as one batch in one worker: planned without torch, each run's
folder and metrics as the run alone gives them, the rest one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gradleak.config import ExperimentConfig
from gradleak.experiments.backends import BackendOptions, RunBatch, RunTask
from gradleak.experiments.run_batches import plan_batches
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import load_sweep
from gradleak.experiments.sweep_run import run_sweep


def fake_run(config: ExperimentConfig, output_dir: Path) -> dict[str, object]:
    """A test's stand-in run function: never batched."""
    return {"psnr_mean": float(config.seed)}


def write_sweep(folder: Path, spec: dict[str, object], base: dict[str, object]) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}))
    return path


BASE = {
    "data": {"name": "samples", "max_images": 1},
    "model": {"name": "lenet_dlg"},
    "federation": {"batch_size": 1},
    "threat": {"knows_labels": True},
    "attack": {"name": "inverting_gradients", "iterations": 8, "restarts": 2, "labels": "given"},
    "metrics": {"lpips": False},
}


def _task(tmp_path: Path, seed: int, lr: float = 0.1, run=None) -> RunTask:
    config = ExperimentConfig.model_validate({**BASE, "seed": seed, "attack": {"lr": lr}})
    if run is None:
        return RunTask(f"r{seed}-{lr}", config, tmp_path / f"r{seed}")
    return RunTask(f"r{seed}-{lr}", config, tmp_path / f"r{seed}", run)


def test_seed_siblings_are_chunked_for_the_workers(tmp_path: Path) -> None:
    tasks = [_task(tmp_path, s) for s in range(5)] + [_task(tmp_path, 0, lr=0.2)]
    work = plan_batches(tasks, workers=2, limit=8)
    assert [len(w.tasks) if isinstance(w, RunBatch) else 1 for w in work] == [3, 2, 1]
    assert all(isinstance(w, RunTask) for w in plan_batches(tasks, workers=2, limit=1))
    faked = [_task(tmp_path, s, run=fake_run) for s in range(3)]
    assert all(isinstance(w, RunTask) for w in plan_batches(faked, workers=1, limit=8))


def test_a_sweep_of_seeds_runs_batched_and_each_run_is_its_own(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"name": "seeds", "grid": {"seed": [0, 1, 2]}}, BASE)
    sweep = load_sweep(path)
    summary = run_sweep(sweep, tmp_path / "results.db", "local", BackendOptions(workers=1))
    assert summary.done == 3 and summary.failed == 0
    with ResultStore.open_existing(tmp_path / "results.db") as db:
        runs = {r.config["seed"]: r for r in db.runs()}
    assert all(r.metrics["batched_runs"] == 3 for r in runs.values())
    alone = run_experiment(sweep.runs[1].config, tmp_path / "alone")
    batched = runs[sweep.runs[1].config.seed]
    assert (Path(str(batched.artifacts_path)) / "reconstruction.png").is_file()
    assert batched.metrics["best_loss"] == pytest.approx(alone["best_loss"], rel=1e-2)
    assert batched.metrics["psnr_mean"] == pytest.approx(alone["psnr_mean"], abs=0.3)


def test_batch_runs_must_be_a_whole_number(tmp_path: Path) -> None:
    from gradleak.errors import ConfigError

    path = write_sweep(tmp_path, {"grid": {"seed": [0, 1]}, "batch_runs": "many"}, BASE)
    with pytest.raises(ConfigError, match="batch_runs must be a whole number"):
        load_sweep(path)
