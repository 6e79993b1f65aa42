"""``gradleak report`` on a hostile store: every string read from it (run ids, attack names,
config keys and values, statuses, error text, picture paths) lands in the page as inert text."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from gradleak.config import ExperimentConfig
from gradleak.experiments.backends import RunOutcome
from gradleak.experiments.report_html import write_report
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import PlannedRun, run_id

RUN_ID = "<script>alert(1)</script>"
ATTACK = '<img src=x onerror="alert(2)">$\\frac{$'  # and malformed mathtext for the plot
ERROR = "</div><script>alert(3)</script>"
KEY = "<b onmouseover=alert(4)>k"
VALUE = "<svg onload=alert(5)>"


def _hostile_store(tmp_path: Path) -> Path:
    """Three done runs and one failed run, then rows rewritten as a hostile file could hold them."""
    path = tmp_path / "results.db"
    configs = [
        ExperimentConfig.model_validate({"attack": {"name": a}, "federation": {"batch_size": b}})
        for a, b in (("dlg", 1), ("dlg", 2), ("inverting_gradients", 1), ("dlg", 4))
    ]
    runs = [PlannedRun(run_id(c), c, {}) for c in configs]
    with ResultStore.open(path) as db:
        db.plan("s", runs)
        for i, run in enumerate(runs[:-1]):
            folder = tmp_path / "runs" / run.id
            folder.mkdir(parents=True)
            pixels = np.random.default_rng(i).integers(0, 255, (8, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "reconstruction.png")
            metrics = {"psnr_mean": 10.0 + i, "ssim_mean": 0.1 * i}
            db.record("s", RunOutcome(run.id, "done", "s", "f", 1.0, metrics, None, str(folder)))
        db.record("s", RunOutcome(runs[-1].id, "failed", "s", "f", 0.5, error=ERROR))
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "reconstruction.png").write_text("not a picture: a private file")
    with sqlite3.connect(path) as conn:
        first, second, third = (r.id for r in runs[:3])
        conn.execute("UPDATE runs SET id = ? WHERE id = ?", (RUN_ID, first))
        config = json.loads(
            conn.execute("SELECT config_json FROM runs WHERE id = ?", (third,)).fetchone()[0]
        )
        config["attack"]["name"] = ATTACK
        config["federation"][KEY] = VALUE
        conn.execute("UPDATE runs SET config_json = ? WHERE id = ?", (json.dumps(config), third))
        conn.execute("UPDATE runs SET artifacts_path = ? WHERE id = ?", (str(secret), second))
    return path


def test_hostile_store_strings_are_escaped(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert write_report(_hostile_store(tmp_path), page) == 4
    text = page.read_text(encoding="utf-8")
    assert text.count("<script") == 1  # the page's own sorting script, nothing injected
    for injected in ("<img src=x", "<b onmouseover", "<svg onload", "</div><script"):
        assert injected not in text, injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the id is shown, as text
    assert "&lt;/div&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in text
    assert f"federation.{KEY.replace('<', '&lt;').replace('>', '&gt;')}" in text
    assert text.count('src="data:image/png;base64,') == 2  # the non-PNG "picture" is left out
