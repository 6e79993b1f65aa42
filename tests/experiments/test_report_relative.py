"""``gradleak results --relative-to``: each run against its own baseline run.

The store holds the configs of ``configs/malicious_client_sweep.yaml`` (data set × rule × client
DP, zipped honest/malicious attacker) with made-up metrics, so the command documented at the
top of that file is checked on the keys and values it really has.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import gradleak.cli  # noqa: F401 - registers every command on the app
from gradleak.cli_app import app
from gradleak.errors import ConfigError
from gradleak.experiments.backends import RunOutcome
from gradleak.experiments.report import relative_changes
from gradleak.experiments.store import ResultStore, StoredRun
from gradleak.experiments.sweep import load_sweep

SWEEP = Path(__file__).parents[2] / "configs" / "malicious_client_sweep.yaml"
RULES = ("mean", "krum", "multikrum", "median", "trimmed_mean", "bulyan")
BASELINE = [
    "defense.aggregator.name=mean",
    "defense.client=[]",
    "threat.attacker=peer",
    "attack.name=curious_client",
]
OPTIONS = [arg for selector in BASELINE for arg in ("--relative-to", selector)]
FAILED = ("celeba", "median", True, "malicious_peer")  # a run that failed: no metrics


def cell(config: dict[str, Any]) -> tuple[str, str, bool, str]:
    return (
        config["data"]["name"],
        config["defense"]["aggregator"]["name"],
        bool(config["defense"]["client"]),
        config["threat"]["attacker"],
    )


def psnr(data: str, rule: str, dp: bool, attacker: str) -> float:
    """10 dB (CIFAR-10) or 25 dB (faces) for the honest client under mean without DP, plus
    1 dB per rule index, 2 dB with DP and 5 dB for the malicious client."""
    base = {"cifar10": 10.0, "celeba": 25.0}[data]
    return base + RULES.index(rule) + 2.0 * dp + 5.0 * (attacker == "malicious_peer")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    plan = load_sweep(SWEEP)
    path = tmp_path / "malicious.db"
    with ResultStore.open(path) as db:
        db.plan(plan.name, plan.runs)
        for run in plan.runs:
            key = cell(run.config.model_dump(mode="json"))
            if key == FAILED:
                outcome = RunOutcome(run.id, "failed", "s", "f", 1.0, error="RuntimeError: x")
            else:
                value = psnr(*key)
                metrics = {"psnr_mean": value, "ssim_mean": value / 40}
                outcome = RunOutcome(run.id, "done", "s", "f", 1.0, metrics)
            db.record(plan.name, outcome)
    return path


def base_key(data: str) -> tuple[str, str, bool, str]:
    return (data, "mean", False, "peer")


def stored(path: Path) -> list[StoredRun]:
    with ResultStore.open_existing(path) as db:
        return db.runs()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_each_data_set_gets_its_own_baseline(store: Path) -> None:
    runs = stored(store)
    changes = relative_changes(runs, BASELINE)
    by_cell = {cell(r.config): (r, c) for r, c in zip(runs, changes, strict=True)}
    for data in ("cifar10", "celeba"):
        base, change = by_cell[base_key(data)]
        assert change.baseline == base.id
        assert change.change["psnr_mean"] == change.change["ssim_mean"] == 0.0
        for key, (_, rel) in by_cell.items():
            if key[0] != data or key == FAILED:
                continue
            assert rel.baseline == base.id
            expected = 100 * (psnr(*key) - psnr(*base_key(data))) / psnr(*base_key(data))
            assert rel.change["psnr_mean"] == pytest.approx(expected)
            assert rel.change["ssim_mean"] == pytest.approx(expected)
    # the same cell is +60 % on CIFAR-10 (10 -> 16 dB) but +24 % on faces (25 -> 31 dB)
    assert by_cell[("cifar10", "krum", False, "malicious_peer")][1].change["psnr_mean"] == (
        pytest.approx(60.0)
    )
    assert by_cell[("celeba", "krum", False, "malicious_peer")][1].change["psnr_mean"] == (
        pytest.approx(24.0)
    )
    failed = by_cell[FAILED][1]
    assert failed.baseline is not None and set(failed.change.values()) == {None}


def test_no_unique_baseline_gives_none(store: Path) -> None:
    runs = stored(store)
    not_mean = [r for r in runs if r.config["defense"]["aggregator"]["name"] != "mean"]
    for rel in relative_changes(runs, BASELINE, pool=not_mean):  # no baseline at all
        assert rel.baseline is None and set(rel.change.values()) == {None}
    base = next(r for r in runs if cell(r.config) == base_key("cifar10"))
    twin = StoredRun(**{**base.__dict__, "id": "twin"})  # two runs with one config
    rels = relative_changes([*runs, twin], BASELINE)
    cifar = [rel for r, rel in zip([*runs, twin], rels, strict=True) if "cifar10" in str(r.config)]
    assert cifar and all(rel.baseline is None for rel in cifar)
    assert all(set(rel.change.values()) == {None} for rel in cifar)
    celeba = [rel for r, rel in zip(runs, rels, strict=False) if "celeba" in str(r.config)]
    assert all(rel.baseline is not None for rel in celeba)


def test_a_zero_or_missing_metric_gives_none_not_a_crash(store: Path) -> None:
    runs = stored(store)
    base = next(r for r in runs if cell(r.config) == base_key("cifar10"))
    zeroed = [
        StoredRun(**{**r.__dict__, "metrics": {"psnr_mean": 0.0}}) if r is base else r for r in runs
    ]
    other = next(r for r in zeroed if cell(r.config) == ("cifar10", "krum", True, "peer"))
    (rel,) = relative_changes([other], BASELINE, pool=zeroed)
    assert rel.baseline == base.id and rel.change["psnr_mean"] is None
    assert rel.change["ssim_mean"] is None  # the baseline has no SSIM


def test_cli_table_has_the_change_columns(store: Path) -> None:
    out = invoke("results", str(store), *OPTIONS, "--where", "defense.aggregator.name=krum")
    assert "ΔPSNR %" in out and "ΔSSIM %" in out and "ΔLPIPS" not in out
    rows = [line for line in out.splitlines() if " done " in line or " failed " in line]
    assert len(rows) == 8  # the baselines (mean) are hidden by --where but still used
    assert sum("+60.0" in line for line in rows) == 1  # cifar10, krum, no DP, malicious: 16 dB
    assert sum("+24.0" in line for line in rows) == 1  # celeba, krum, no DP, malicious: 31 dB
    baselines = invoke("results", str(store), *OPTIONS, "--where", "defense.aggregator.name=mean")
    assert sum(line.count("+0.0") == 2 for line in baselines.splitlines()) == 2
    assert "ΔPSNR %" not in invoke("results", str(store))


def test_cli_shows_a_dash_without_baseline(store: Path) -> None:
    failed = invoke(
        "results", str(store), *OPTIONS, "--where", "status=failed", "--where", "data.name=celeba"
    )
    (row,) = [line for line in failed.splitlines() if " failed " in line]
    assert row.count(" - ") >= 2
    nothing = invoke("results", str(store), "--relative-to", "defense.aggregator.name=nope")
    rows = [line for line in nothing.splitlines() if " done " in line]
    assert len(rows) == 47 and all(line.count(" - ") >= 2 for line in rows)


def test_cli_csv_and_json_carry_the_changes(store: Path) -> None:
    text = invoke("results", str(store), *OPTIONS, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    values = {float(r["ΔPSNR %"]) for r in rows if r["ΔPSNR %"]}
    assert {0.0, 60.0, 24.0} <= values
    assert sum(1 for r in rows if not r["ΔPSNR %"]) == 1  # the failed run
    runs = json.loads(invoke("results", str(store), *OPTIONS, "--format", "json"))
    by_id = {r["id"]: r for r in runs}
    for run in runs:
        if run["status"] == "done":
            base = by_id[run["baseline"]]
            assert base["config"]["data"] == run["config"]["data"]
            assert base["config"]["defense"]["client"] == []
            assert run["relative"]["psnr_mean"] is not None


@pytest.mark.parametrize("bad", ["defense.aggregator.name", "=mean", "no.such.key=1"])
def test_bad_selector_is_a_config_error(store: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="--relative-to"):
        relative_changes(stored(store), [bad])


def test_cli_bad_selector_exits_2_with_one_line(store: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gradleak.cli", "results", str(store), "--relative-to", "mean"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --relative-to expects key.path=value, got 'mean'"
    ]
    assert done.stdout == ""


def test_the_sweep_file_documents_this_command() -> None:
    comment = " ".join(
        line.lstrip("#").strip().rstrip("\\")
        for line in SWEEP.read_text().splitlines()
        if line.startswith("#")
    )
    words = shlex.split(comment[comment.index("gradleak results") :].split(" The table")[0])
    assert [w for w in words if w != "--relative-to"][3:] == BASELINE
    assert words[words.index(BASELINE[0]) - 1] == "--relative-to"


def test_baselines_stay_within_their_sweep(store: Path) -> None:
    runs = stored(store)
    copies = [StoredRun(**{**r.__dict__, "sweep": "again", "id": r.id + "x"}) for r in runs]
    changes = relative_changes([*runs, *copies], BASELINE)
    for run, rel in zip([*runs, *copies], changes, strict=True):
        if run.status == "done":
            assert rel.baseline is not None and rel.baseline.endswith("x") == (run.sweep == "again")
