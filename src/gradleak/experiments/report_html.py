"""``gradleak report``: one self-contained HTML page for a results store.

Self-contained means one file that opens offline, gets mailed around and archived with a paper:
pictures are base64 data URIs, plots are inline SVG, the sorting script is inline, and nothing
is fetched from anywhere. The page marks ``<body data-ready="yes">`` once its script has run
(and lists any script error in ``data-errors``) so that a headless browser can check it.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gradleak.experiments import text_pictures
from gradleak.experiments.report import (
    flatten,
    format_component,
    load_runs,
    modalities,
    results_table,
    run_modality,
    varying_keys,
)
from gradleak.experiments.store import ResultStore, StoredRun

PLOTTED_METRICS = {
    "image": (("psnr_mean", "PSNR (dB)"), ("ssim_mean", "SSIM")),
    "text": (("rouge1_mean", "ROUGE-1"), ("token_accuracy", "token accuracy")),
}
"""What each modality's runs are plotted by; a store with both kinds gets both."""
TEXT_ROWS_SHOWN = 8
"""Sentences of a text run drawn in its card; the rest are in its ``reconstruction.html``."""
NOT_AN_AXIS = frozenset({"attack.name", "seed"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STYLE = (
    """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#eee;cursor:pointer;user-select:none}th.asc::after{content:" ▲"}
th.desc::after{content:" ▼"}tr.failed{background:#fdd}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;padding:6px;font-size:12px}
.card img{display:block;max-width:360px;image-rendering:pixelated}.plots svg{max-width:100%}
.card.text{flex-basis:100%}
"""
    + text_pictures.TEXT_STYLE
)

SCRIPT = """
window.addEventListener("error", e => {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";";
});
function sortBy(th) {
  const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  const asc = !th.classList.contains("asc");
  table.querySelectorAll("th").forEach(h => h.classList.remove("asc", "desc"));
  th.classList.add(asc ? "asc" : "desc");
  const key = tr => tr.cells[col].dataset.v ?? tr.cells[col].textContent;
  const cmp = (a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const r = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
    return asc ? r : -r;
  };
  [...body.rows].sort(cmp).forEach(tr => body.appendChild(tr));
}
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => sortBy(th)));
document.body.dataset.ready = "yes";
"""


def _cell(value: Any) -> str:
    return html.escape(format_component(value))


def _text(value: Any) -> str:
    """Any string read from the store (ids, keys, statuses, errors) as inert HTML text: a hostile
    store must not be able to inject markup or script into the page."""
    return html.escape(str(value))


def _plain(value: Any) -> str:
    """A store value as matplotlib text that is never parsed as mathtext: an unbalanced or
    malformed ``$...$`` in an attack name or config value would stop the report."""
    return str(value).replace("$", r"\$")


def _table(runs: list[StoredRun]) -> str:
    table = results_table(runs)
    head = "".join(f"<th>{_text(c)}</th>" for c in table.columns)
    body = "".join(
        f'<tr class="{_text(row[1])}">'
        + "".join(f'<td data-v="{_cell(v)}">{_cell(v)}</td>' for v in row)
        + "</tr>"
        for row in table.rows
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _image(run: StoredRun) -> str:
    """The run's picture, embedded only when the file really is a PNG: the store names the
    folder, and a hostile store must not get arbitrary local files mailed around in the page."""
    path = Path(run.artifacts_path or "") / "reconstruction.png"
    try:
        content = path.read_bytes() if run.artifacts_path and path.is_file() else b""
    except OSError:
        content = b""
    if not content.startswith(PNG_SIGNATURE):
        return "<p>(no picture)</p>"
    data = base64.b64encode(content).decode()
    return f'<img alt="reconstruction {_text(run.id)}" src="data:image/png;base64,{data}">'


def _text_rows(run: StoredRun) -> str:
    """A text run's sentences, redrawn from the data its ``reconstruction.html`` carries (read
    back and checked by ``text_pictures``), never from the file's own markup: a hostile store
    can point the folder anywhere, and only escaped tokens and numbers may reach the page."""
    path = Path(run.artifacts_path or "") / text_pictures.FILE_NAME
    picture = text_pictures.load_text_reconstruction(path) if run.artifacts_path else None
    if picture is None:
        return "<p>(no reconstruction)</p>"
    table = text_pictures.text_table(
        picture.truth, picture.recon, picture.pairs, limit=TEXT_ROWS_SHOWN
    )
    rest = len(picture.truth) - TEXT_ROWS_SHOWN
    more = f"<p>{rest} more sentences in {text_pictures.FILE_NAME}.</p>" if rest > 0 else ""
    return f"{text_pictures.legend()}{table}{more}"


def _metric(metrics: dict[str, Any], key: str) -> str:
    return _cell(metrics.get(key))


def _image_detail(metrics: dict[str, Any]) -> str:
    return f"PSNR {_metric(metrics, 'psnr_mean')} dB, SSIM {_metric(metrics, 'ssim_mean')}"


def _text_detail(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{html.escape(label)} {_metric(metrics, key)}"
        for key, label in text_pictures.BATCH_SCORES
        if key in metrics
    )


# Per modality: the card's score line and its reconstruction. A run's modality is read from its
# metrics (a text run has ROUGE keys); a failed run has none and is drawn as an image run was.
DETAILS = {"image": _image_detail, "text": _text_detail}
PICTURES = {"image": _image, "text": _text_rows}


def _cards(runs: list[StoredRun], keys: list[str]) -> str:
    cards = []
    for run in runs:
        flat, metrics = flatten(run.config), run.metrics or {}
        modality = run_modality(run.metrics)
        label = ", ".join(f"{_text(k)}={_cell(flat.get(k))}" for k in keys) or _text(run.id)
        detail = (
            DETAILS[modality](metrics)
            if run.status == "done"
            else f"{_text(run.status)}: {_text(run.error or '')}"
        )
        cards.append(
            f'<div class="card {modality}"><b>{_text(run.id)}</b><br>{label}<br>{detail}'
            f"{PICTURES[modality](run)}</div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _axis(values: list[Any]) -> tuple[list[Any], bool]:
    """The distinct x values in plotting order, and whether the axis is numeric."""
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    return (sorted(distinct) if numeric else sorted(distinct, key=str)), numeric


def _plot(runs: list[StoredRun], key: str) -> str:
    """The plotted metrics of each modality present (PSNR and SSIM for images, ROUGE-1 and
    token accuracy for text) against one varying key, one line per attack, as inline SVG."""
    done = [(flatten(r.config), r.metrics or {}) for r in runs if r.status == "done"]
    xs, numeric = _axis([flat.get(key) for flat, _ in done])
    plotted = [pair for m in modalities(runs) for pair in PLOTTED_METRICS[m]]
    fig, axes = plt.subplots(1, len(plotted), figsize=(4.5 * len(plotted), 3.2), squeeze=False)
    for ax, (metric, label) in zip(axes[0], plotted, strict=True):
        series: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
        for flat, metrics in done:
            if isinstance(metrics.get(metric), int | float):
                series[str(flat.get("attack.name"))][flat.get(key)].append(metrics[metric])
        for attack, points in sorted(series.items()):
            at = [x for x in xs if x in points]
            pos = at if numeric else [xs.index(x) for x in at]
            means = [sum(points[x]) / len(points[x]) for x in at]
            ax.plot(pos, means, marker="o", label=_plain(attack))
        if not numeric:
            ax.set_xticks(range(len(xs)), [_plain(x) for x in xs], rotation=20)
        ax.set_xlabel(_plain(key))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(title="attack", fontsize=8)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def render_report(runs: list[StoredRun], title: str) -> str:
    """The whole page for ``runs`` as one HTML string."""
    keys = varying_keys(runs)
    axes = [k for k in keys if k not in NOT_AN_AXIS]
    done = sum(r.status == "done" for r in runs)
    plots = (
        "".join(f"<h3>against {html.escape(k)}</h3>{_plot(runs, k)}" for k in axes)
        if done
        else "<p>No finished runs to plot.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(runs)} runs: {done} done, {sum(r.status == "failed" for r in runs)} failed,
{sum(r.status in ("pending", "running") for r in runs)} not finished. Click a column to sort.</p>
<h2>Runs</h2>{_table(runs)}
<h2>Leakage against each swept setting</h2><div class="plots">{plots}</div>
<h2>Reconstructions (pictures: ground truth above, reconstruction below; text: each true
sentence beside its matched reconstruction)</h2>{_cards(runs, keys)}
<script>{SCRIPT}</script>
</body></html>
"""


def write_report(store_path: Path, html_path: Path, sweep: str | None = None) -> int:
    """Write the report of a store (one sweep of it, when named); returns the number of runs."""
    with ResultStore.open_existing(store_path) as store:
        runs = load_runs(store, sweep)
        names = store.sweeps()
    title = f"gradleak report: {sweep or ', '.join(names) or Path(store_path).name}"
    Path(html_path).write_text(render_report(runs, title), encoding="utf-8")
    return len(runs)
