"""``gradleak results`` formats and filters, and the HTML report checked in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import gradleak.cli  # noqa: F401 - registers every command on the app
from gradleak.cli_app import app
from gradleak.config import ExperimentConfig
from gradleak.experiments.backends import RunOutcome
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import PlannedRun, run_id

ATTACKS = ("dlg", "inverting_gradients")
BATCHES = (1, 2, 4)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with 6 done runs (attack x batch size, each with a picture) and 1 failed run."""
    path = tmp_path / "results.db"
    configs = [
        ExperimentConfig.model_validate({"attack": {"name": a}, "federation": {"batch_size": b}})
        for a in ATTACKS
        for b in BATCHES
    ]
    configs.append(ExperimentConfig.model_validate({"federation": {"batch_size": 8}}))
    runs = [PlannedRun(run_id(c), c, {}) for c in configs]
    rng = np.random.default_rng(0)
    with ResultStore.open(path) as db:
        db.plan("bs", runs)
        for run in runs[:-1]:
            folder = tmp_path / "runs" / run.id
            folder.mkdir(parents=True)
            pixels = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "reconstruction.png")
            psnr = 30.0 / run.config.federation.batch_size
            metrics = {"attack": run.config.attack.name, "psnr_mean": psnr, "ssim_mean": psnr / 40}
            db.record("bs", RunOutcome(run.id, "done", "s", "f", 1.0, metrics, None, str(folder)))
        db.record("bs", RunOutcome(runs[-1].id, "failed", "s", "f", 0.5, error="OOM: too big"))
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_results_csv_has_a_header_then_one_line_per_run(store: Path) -> None:
    rows = list(csv.reader(io.StringIO(invoke("results", str(store), "--format", "csv"))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["id", "status", "federation.batch_size", "attack.name"]
    assert {"psnr_mean", "ssim_mean", "lpips_mean", "label_accuracy"} <= set(header)
    assert len(body) == 7
    assert all(len(row) == len(header) for row in body)


def test_results_json_and_where_filters(store: Path) -> None:
    out = invoke("results", str(store), "--format", "json", "--where", "federation.batch_size=2")
    runs = json.loads(out)
    assert [r["config"]["attack"]["name"] for r in runs] == list(ATTACKS)
    assert all(r["metrics"]["psnr_mean"] == 15.0 for r in runs)
    failed = json.loads(
        invoke("results", str(store), "--format", "json", "--where", "status=failed")
    )
    assert [r["error"] for r in failed] == ["OOM: too big"]
    table = invoke("results", str(store), "--where", "attack.name=dlg")
    assert table.count("done") == 3


def test_results_on_a_foreign_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_text("hello")
    done = subprocess.run(
        [sys.executable, "-m", "gradleak.cli", "results", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "is damaged (not an SQLite file at all)" in done.stderr
    assert path.read_text() == "hello"


def test_report_is_self_contained(store: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    invoke("report", str(store), "--html", str(page))
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == 6
    assert text.count("<svg") == 1  # one varying axis besides the attack: batch size
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert '<table class="sortable"' in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")
def test_report_loads_in_headless_chromium(store: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    invoke("report", str(store), "--html", str(page))
    shot = tmp_path / "shot.png"
    flags = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60
    ).stdout
    assert 'data-ready="yes"' in dom
    assert "data-errors" not in dom
    assert dom.count("<img") == 6
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60)
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_components_read_as_written_in_table_cells() -> None:
    from gradleak.experiments.report import format_component

    dp = {"name": "clip_noise", "clip_norm": 4.0, "noise_multiplier": 0.0005, "delta": None}
    assert format_component([dp]) == "clip_noise(clip_norm=4, noise_multiplier=0.0005)"
    assert format_component([dp, {"name": "topk", "fraction": 0.1}]).endswith(
        " + topk(fraction=0.1)"
    )
    assert format_component([]) == "[]"
    assert format_component(0.123456) == "0.1235"
