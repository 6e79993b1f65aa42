"""Sweep expansion, stable ids, validation before anything runs, failures and resuming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.backends import BackendOptions, RunOutcome
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import load_sweep
from gradleak.experiments.sweep_run import run_sweep

BASE = {"data": {"name": "samples"}, "model": {"name": "lenet_dlg"}, "attack": {"iterations": 5}}


def write_sweep(folder: Path, spec: dict[str, Any], base: dict[str, Any] | None = None) -> Path:
    (folder / "base.yaml").write_text(yaml.safe_dump(base or BASE))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}))
    return path


def fake_run(config: ExperimentConfig, output_dir: Path) -> dict[str, Any]:
    """Stands in for the runner: fails on batch size 3, else scores the batch size."""
    if config.federation.batch_size == 3:
        raise RuntimeError("diverged\nsecond line that must not reach the store")
    (output_dir / "ran").write_text("x")
    return {"attack": config.attack.name, "psnr_mean": float(config.federation.batch_size)}


def test_grid_zip_and_set_expand_to_every_combination(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        {
            "name": "demo",
            "grid": {"federation.batch_size": [1, 2], "attack.name": ["dlg", "idlg"]},
            "zip": {"seed": [0, 1, 2], "attack.lr": [0.1, 0.2, 0.3]},
            "set": {"attack.iterations": 7, "metrics.lpips": False},
        },
    )
    sweep = load_sweep(path)
    assert sweep.name == "demo"
    assert len(sweep.runs) == 2 * 2 * 3
    assert {(r.config.seed, r.config.attack.lr) for r in sweep.runs} == {
        (0, 0.1),
        (1, 0.2),
        (2, 0.3),
    }
    assert all(r.config.attack.iterations == 7 and not r.config.metrics.lpips for r in sweep.runs)
    assert all(r.config.model.name == "lenet_dlg" for r in sweep.runs)
    assert len({r.id for r in sweep.runs}) == len(sweep.runs)


def test_a_tied_grid_axis_sets_its_keys_together(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        {
            "grid": {
                "data.name+data.labels": [["cifar10", "dataset"], ["celeba", "client"]],
                "seed": [0, 1],
            }
        },
    )
    runs = load_sweep(path).runs
    assert len(runs) == 4
    assert {(r.config.data.name, r.config.data.labels) for r in runs} == {
        ("cifar10", "dataset"),
        ("celeba", "client"),
    }
    assert all(set(r.params) == {"data.name", "data.labels", "seed"} for r in runs)


def test_the_malicious_client_sweep_labels_faces_by_client() -> None:
    sweep = load_sweep(Path(__file__).parents[2] / "configs" / "malicious_client_sweep.yaml")
    assert len(sweep.runs) == 2 * 6 * 2 * 2
    labels = {r.config.data.name: r.config.data.labels for r in sweep.runs}
    assert labels == {"cifar10": "dataset", "celeba": "client"}


def test_ids_depend_on_the_resolved_config_only(tmp_path: Path) -> None:
    one = write_sweep(tmp_path, {"grid": {"seed": [0, 1], "federation.batch_size": [1, 2]}})
    ids = {(r.config.seed, r.config.federation.batch_size): r.id for r in load_sweep(one).runs}
    other = tmp_path / "other"
    other.mkdir()
    # Same experiments listed in another order, with a default spelled out: same ids.
    two = write_sweep(
        other,
        {"grid": {"federation.batch_size": [2, 1], "seed": [1, 0]}, "set": {"attack.lr": 0.1}},
    )
    assert {
        (r.config.seed, r.config.federation.batch_size): r.id for r in load_sweep(two).runs
    } == ids


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grid": {"federation.batch_sise": [1, 2]}}, "'federation.batch_sise' does not exist"),
        ({"grid": {"seed": []}}, "empty list"),
        ({"zip": {"seed": [0, 1], "attack.lr": [0.1]}}, "equal lengths"),
        ({"grid": {"federation.batch_size": [1, 0]}}, "federation.batch_size=0"),
        ({"grid": {"seed": [1, 1]}}, "same experiment"),
        ({"grid": {"seed": [1]}, "set": {"seed": 2}}, "more than one"),
        ({"grids": {"seed": [1]}}, "unknown key 'grids'"),
        ({"grid": {"seed+attack.lr": [[0, 0.1], [1]]}}, "ties 2 keys"),
    ],
)
def test_bad_sweeps_fail_before_running(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, spec))


def test_cli_bad_sweep_exits_2_without_touching_the_store(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"attack.nmae": ["dlg"]}})
    store = tmp_path / "results.db"
    done = subprocess.run(
        [sys.executable, "-m", "gradleak.cli", "sweep", str(path), "--store", str(store)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "'attack.nmae' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not store.exists()


def test_failures_are_recorded_and_the_sweep_goes_on_then_resumes(
    tmp_path: Path, dead_owner: str
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"federation.batch_size": [1, 2, 3, 4]}}))
    store_path, out = tmp_path / "r.db", tmp_path / "runs"
    with ResultStore.open(store_path) as store:  # a previous, killed invocation
        store.plan(sweep.name, sweep.runs)
        first, second = sweep.runs[0], sweep.runs[1]
        store.record(sweep.name, RunOutcome(first.id, "done", "t0", "t1", 1.0, {"psnr_mean": 9.0}))
        store.mark_running(sweep.name, second.id, "t0", "somewhere", owner=dead_owner)

    summary = run_sweep(sweep, store_path, "local", BackendOptions(workers=2), out, run=fake_run)

    assert (summary.total, summary.skipped, summary.done, summary.failed) == (4, 1, 2, 1)
    assert not (out / sweep.name / first.id).exists()
    with ResultStore.open_existing(store_path) as store:
        runs = {r.config["federation"]["batch_size"]: r for r in store.runs()}
    assert [runs[b].status for b in (1, 2, 3, 4)] == ["done", "done", "failed", "done"]
    assert runs[1].metrics == {"psnr_mean": 9.0}
    assert runs[3].error == "RuntimeError: diverged"
    assert "second line" in (Path(str(runs[3].artifacts_path)) / "error.log").read_text()
    assert runs[4].metrics == {"attack": "inverting_gradients", "psnr_mean": 4.0}

    again = run_sweep(sweep, store_path, "local", BackendOptions(workers=1), out, run=fake_run)
    assert (again.skipped, again.done, again.failed) == (4, 0, 0)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "configs" / "sweeps").glob("*.yaml")), ids=str
)
def test_example_sweeps_expand_and_validate(path: Path) -> None:
    assert load_sweep(path).runs
