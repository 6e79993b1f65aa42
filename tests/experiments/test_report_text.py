"""``gradleak report`` and ``gradleak results`` on a store holding text runs beside image runs:
text runs show their sentences (redrawn, escaped) and ROUGE where image runs show PSNR."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from gradleak.config import ExperimentConfig
from gradleak.experiments.backends import RunOutcome
from gradleak.experiments.report import format_csv, relative_changes, results_table
from gradleak.experiments.report_html import TEXT_ROWS_SHOWN, render_report, write_report
from gradleak.experiments.store import ResultStore, StoredRun
from gradleak.experiments.sweep import PlannedRun, run_id
from gradleak.experiments.text_pictures import save_text_reconstruction

EVIL = "<script>alert(1)</script>"


def _text_metrics(rouge1: float) -> dict[str, float]:
    return {
        "rouge1_mean": rouge1,
        "rouge2_mean": rouge1 / 2,
        "rougeL_mean": rouge1 * 0.8,
        "token_accuracy": rouge1 / 4,
        "exact_sentence_rate": 0.0,
        "label_accuracy": 1.0,
    }


def _write_text_run(folder: Path, sentences: int, rouge1: float) -> None:
    truth = [["the", "market", "fell", f"w{i}", "##ing"] for i in range(sentences)]
    truth[0][1] = EVIL  # hostile text in a true sentence
    recon = [["market", "the", "fell", "x", "##ing"] for _ in range(sentences)]
    pairs = [{"rouge1": rouge1, "rouge2": 0.1, "rougeL": 0.2, "token_accuracy": 0.4}] * sentences
    save_text_reconstruction(
        truth, recon, pairs, "tag", folder / "reconstruction.html", _text_metrics(rouge1)
    )


def _store(tmp_path: Path) -> Path:
    """Two image runs, two text runs (one with more sentences than a card shows), a text run
    whose folder holds a foreign ``reconstruction.html``, and a failed run."""
    path = tmp_path / "results.db"
    configs = [
        ExperimentConfig.model_validate(
            {"attack": {"name": "dlg"}, "federation": {"batch_size": b}}
        )
        for b in (1, 2, 4, 8, 16, 32)
    ]
    runs = [PlannedRun(run_id(c), c, {}) for c in configs]
    with ResultStore.open(path) as db:
        db.plan("mixed", runs)
        folders = []
        for run in runs:
            folder = tmp_path / "runs" / run.id
            folder.mkdir(parents=True)
            folders.append(folder)
        for i in range(2):
            pixels = np.random.default_rng(i).integers(0, 255, (8, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folders[i] / "reconstruction.png")
            metrics = {"psnr_mean": 20.0 + i, "ssim_mean": 0.5, "label_accuracy": 1.0}
            db.record(
                "mixed", RunOutcome(runs[i].id, "done", "s", "f", 1, metrics, None, str(folders[i]))
            )
        for i, (sentences, rouge1) in ((2, (2, 0.91)), (3, (TEXT_ROWS_SHOWN + 3, 0.42))):
            _write_text_run(folders[i], sentences, rouge1)
            db.record(
                "mixed",
                RunOutcome(
                    runs[i].id, "done", "s", "f", 1, _text_metrics(rouge1), None, str(folders[i])
                ),
            )
        (folders[4] / "reconstruction.html").write_text(
            "<html><script>steal()</script><table><tr><td>private notes</td></tr></table>"
        )
        db.record(
            "mixed",
            RunOutcome(runs[4].id, "done", "s", "f", 1, _text_metrics(0.3), None, str(folders[4])),
        )
        db.record("mixed", RunOutcome(runs[5].id, "failed", "s", "f", 1, error="OOM"))
    return path


def _runs(path: Path) -> list[StoredRun]:
    with ResultStore.open_existing(path) as store:
        return store.runs(None)


def test_report_shows_text_runs_beside_image_runs(tmp_path: Path) -> None:
    store = _store(tmp_path)
    page = tmp_path / "report.html"
    assert write_report(store, page) == 6
    text = page.read_text(encoding="utf-8")
    assert text.count('src="data:image/png;base64,') == 2  # the image runs, as before
    assert text.count('<table class="gl-text">') == 2  # the two real text runs, redrawn
    assert "data-gradleak-text" not in text  # the file's data is read, not copied
    assert text.count("<script") == 1  # the page's own script; the hostile token is text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "private notes" not in text and "steal()" not in text  # a foreign file stays out
    assert text.count("(no reconstruction)") == 1
    # Marks and pieces as in reconstruction.html: "fell" in place, "the"/"market" swapped.
    assert '<span class="tk tk-same">fell</span>' in text
    assert '<span class="tk tk-moved">market</span>' in text
    assert '<span class="tk tk-same tk-cont" title="##ing">ing</span>' in text
    # A card draws at most TEXT_ROWS_SHOWN sentences and says where the rest are.
    cards = text.split('<div class="card ')[1:]
    longest = max(cards, key=lambda c: c.count("<tr>"))
    assert longest.count("<tr>") == TEXT_ROWS_SHOWN + 1  # the header row and the shown rows
    assert "3 more sentences in reconstruction.html" in longest
    # Scores where image runs show PSNR: each card has its own modality's line.
    assert re.search(r"ROUGE-1 0\.91, ROUGE-2 0\.455, ROUGE-L 0\.728, token accuracy 0\.2275", text)
    assert "PSNR 20 dB, SSIM 0.5" in text and "PSNR 21 dB" in text
    assert sum(c.startswith('text"') for c in cards) == 3
    assert "failed: OOM" in text
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)


def test_results_columns_follow_the_modalities_present(tmp_path: Path) -> None:
    runs = _runs(_store(tmp_path))
    header = next(csv.reader(io.StringIO(format_csv(runs))))
    for key in ("psnr_mean", "ssim_mean", "rouge1_mean", "token_accuracy", "exact_sentence_rate"):
        assert key in header, key
    text_only = [r for r in runs if r.metrics and "rouge1_mean" in r.metrics]
    table = results_table(text_only, relative_changes(text_only, ["federation.batch_size=4"]))
    assert "psnr_mean" not in table.columns and "ΔPSNR %" not in table.columns
    assert {"rouge1_mean", "ΔROUGE-1 %", "Δtoken acc. %"} <= set(table.columns)
    column = table.columns.index("rouge1_mean")
    assert sorted(row[column] for row in table.rows) == [0.3, 0.42, 0.91]
    # The text plots: ROUGE-1 and token accuracy against batch size, one figure.
    page = render_report(text_only, "t")
    assert page.count("<svg") == 1 and "ROUGE-1" in page and "PSNR (dB)" not in page
