"""Reading a results store back: filters on config keys, the columns worth showing, and the
``table``/``csv``/``json`` formats of ``gradleak results``.

A sweep's runs differ only in a few config keys; the rest is noise in a table. So the columns
are the keys whose values differ among the selected runs, found from the stored configs rather
than from the sweep file: this works for several sweeps in one store and for edited sweeps.

``--relative-to key.path=value`` (repeatable) compares each run with its baseline: the run that
matches every such selector and agrees with it on every other config key, so one selector set
gives each data set (or any other varying key) its own baseline.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from gradleak.errors import ConfigError
from gradleak.experiments.store import ResultStore, StoredRun
from gradleak.registry import Registry
from gradleak.yaml_io import parse_value

IMAGE_METRICS = ("psnr_mean", "ssim_mean", "lpips_mean")
TEXT_METRICS = (
    "rouge1_mean",
    "rouge2_mean",
    "rougeL_mean",
    "token_accuracy",
    "exact_sentence_rate",
)
MODALITY_METRICS = {"image": IMAGE_METRICS, "text": TEXT_METRICS}
"""Each modality's reconstruction scores; a run has one modality's keys, never both."""
SHARED_METRICS = ("label_accuracy",)
METRIC_COLUMNS = (*IMAGE_METRICS, *SHARED_METRICS)
"""The metric columns of a store of image runs (see :func:`metric_columns`)."""
RUN_FIELDS = ("sweep", "status")
# Metrics compared with a baseline, and their column titles. LPIPS is a distance (lower is
# better), so a negative ΔLPIPS % is a better reconstruction; the change is reported as is.
RELATIVE_METRICS = {
    "psnr_mean": "ΔPSNR %",
    "ssim_mean": "ΔSSIM %",
    "lpips_mean": "ΔLPIPS %",
    "rouge1_mean": "ΔROUGE-1 %",
    "rougeL_mean": "ΔROUGE-L %",
    "token_accuracy": "Δtoken acc. %",
}


def run_modality(metrics: dict[str, Any] | None) -> str:
    """``text`` for a run scored with text metrics, else ``image`` (also for a run without
    metrics, a failed one: image runs were the only kind before text, and stay the default)."""
    found = [m for m, keys in MODALITY_METRICS.items() if any(k in (metrics or {}) for k in keys)]
    return found[0] if found else "image"


def modalities(runs: list[StoredRun]) -> list[str]:
    """The modalities among ``runs`` with metrics, in :data:`MODALITY_METRICS` order; ``image``
    alone when none has any, so a store of failed runs keeps the familiar columns."""
    present = {run_modality(r.metrics) for r in runs if r.metrics}
    return [m for m in MODALITY_METRICS if m in present] or ["image"]


def metric_columns(runs: list[StoredRun]) -> list[str]:
    """The score columns of each modality present, then the shared ones (label accuracy)."""
    return [k for m in modalities(runs) for k in MODALITY_METRICS[m]] + list(SHARED_METRICS)


def load_runs(store: ResultStore, sweep: str | None) -> list[StoredRun]:
    """The runs of one sweep (or all); an unknown sweep name is a user error."""
    known = store.sweeps()
    if sweep is not None and sweep not in known:
        raise ConfigError(
            f"no sweep {sweep!r} in {store.path}; known: {', '.join(known) or '(none)'}"
        )
    return store.runs(sweep)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (they are one setting)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _fields(run: StoredRun) -> dict[str, Any]:
    return {**flatten(run.config), "sweep": run.sweep, "status": run.status}


def _matches(value: Any, wanted: Any) -> bool:
    return bool(value == wanted or str(value) == str(wanted))


def parse_selectors(
    runs: list[StoredRun], texts: list[str], option: str = "--where"
) -> list[tuple[str, Any]]:
    """``key.path=value`` texts as (key, value) pairs, the value read as YAML (``[]``, ``4.0``).

    A text without ``=`` or a key that no stored run has is a user error naming ``option``.
    """
    known = set(RUN_FIELDS).union(*(flatten(r.config) for r in runs))
    selectors: list[tuple[str, Any]] = []
    for text in texts:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects key.path=value, got {text!r}")
        if runs and key.strip() not in known:
            raise ConfigError(f"{option} key {key.strip()!r} is not a config key of any stored run")
        selectors.append((key.strip(), parse_value(raw, f"{option} {key.strip()}")))
    return selectors


def _selected(run: StoredRun, selectors: list[tuple[str, Any]]) -> bool:
    fields = _fields(run)
    return all(_matches(fields.get(k), v) for k, v in selectors)


def select(runs: list[StoredRun], where: list[str]) -> list[StoredRun]:
    """Runs whose config keys (or ``sweep``/``status``) equal every ``key.path=value`` given."""
    filters = parse_selectors(runs, where)
    return [r for r in runs if _selected(r, filters)]


def varying_keys(runs: list[StoredRun]) -> list[str]:
    """Config keys whose values differ among ``runs``, in config order."""
    flats = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


@dataclass(frozen=True)
class Relative:
    """One run against its baseline: the baseline's id (None: no unique baseline) and, per
    metric of :data:`RELATIVE_METRICS`, ``100 * (x - base) / |base|`` or None where it cannot be
    computed (no unique baseline, a metric missing on either side, or a zero baseline)."""

    baseline: str | None
    change: dict[str, float | None]


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _change(value: Any, base: Any) -> float | None:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, base))
    if not numbers or base == 0:
        return None
    return float(100.0 * (value - base) / abs(base))


def relative_changes(
    runs: list[StoredRun], relative_to: list[str], pool: list[StoredRun] | None = None
) -> list[Relative]:
    """Each run's relative change in percent against its baseline, in the order of ``runs``.

    The baseline of a run is the run of ``pool`` (default: ``runs``) that matches every
    ``key.path=value`` of ``relative_to`` (parsed as ``--where``) and agrees with the run on
    every other key that varies in ``pool`` (and on the sweep, unless a selector names
    ``sweep``): the keys named by the selectors are the ones allowed to differ. Zero or several
    such runs give no baseline and only None changes; a baseline matches itself (+0 %).
    Passing the unfiltered runs as ``pool`` keeps the baselines of rows that ``--where`` hid.
    """
    candidates = runs if pool is None else pool
    selectors = parse_selectors(candidates, relative_to, "--relative-to")
    named = {k for k, _ in selectors}
    keys = [k for k in varying_keys([*candidates, *runs]) if k not in named]
    if "sweep" not in named:
        keys.append("sweep")

    def signature(run: StoredRun) -> tuple[str, ...]:
        fields = _fields(run)
        return tuple(_json_key(fields.get(k)) for k in keys)

    bases: dict[tuple[str, ...], list[StoredRun]] = {}
    for run in candidates:
        if _selected(run, selectors):
            bases.setdefault(signature(run), []).append(run)
    out = []
    for run in runs:
        found = bases.get(signature(run), [])
        base = found[0] if len({r.id for r in found}) == 1 else None
        metrics, base_metrics = run.metrics or {}, (base.metrics or {}) if base else {}
        out.append(
            Relative(
                base.id if base else None,
                {
                    m: _change(metrics.get(m), base_metrics.get(m)) if base else None
                    for m in RELATIVE_METRICS
                },
            )
        )
    return out


def _relative_metrics(runs: list[StoredRun]) -> list[str]:
    """The compared metrics of each modality present: PSNR and SSIM always for images (LPIPS
    only if some run measured it); for text, those that some run measured."""
    shown = metric_columns(runs)
    measured = {m for r in runs for m, v in (r.metrics or {}).items() if v is not None}
    return [
        m
        for m in RELATIVE_METRICS
        if m in shown and (m in ("psnr_mean", "ssim_mean") or m in measured)
    ]


@dataclass(frozen=True)
class ResultsTable:
    """The selected runs as rows of plain values under named columns."""

    columns: list[str]
    rows: list[list[Any]]


def results_table(runs: list[StoredRun], relative: list[Relative] | None = None) -> ResultsTable:
    """Id, status, the varying config keys, main metrics, their relative changes (if
    ``relative`` is given), run time and error, one row per run."""
    keys = varying_keys(runs)
    if len({r.sweep for r in runs}) > 1:
        keys = ["sweep", *keys]
    compared = _relative_metrics(runs) if relative is not None else []
    scores = metric_columns(runs)
    columns = [
        "id",
        "status",
        *keys,
        *scores,
        *(RELATIVE_METRICS[m] for m in compared),
        "wall_seconds",
        "error",
    ]
    changes = relative or [Relative(None, {})] * len(runs)
    rows = []
    for run, change in zip(runs, changes, strict=True):
        fields, metrics = _fields(run), run.metrics or {}
        rows.append(
            [run.id, run.status]
            + [fields.get(k) for k in keys]
            + [metrics.get(m) for m in scores]
            + [change.change[m] for m in compared]
            + [run.wall_seconds, run.error]
        )
    return ResultsTable(columns, rows)


def format_cell(value: Any) -> str:
    """A value as a short table cell: 4 significant digits, JSON for lists, blank for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def format_component(value: Any) -> str:
    """A table cell in which config components read as they are written, ``name(key=value)``
    with unset fields left out (``clip_noise(clip_norm=4.0, noise_multiplier=0.0005)``), rather
    than as JSON that wraps over ten lines; ``[]`` stays ``[]``. Other values: ``format_cell``."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        fields = ", ".join(
            f"{k}={format_cell(v)}" for k, v in value.items() if k != "name" and v is not None
        )
        return f"{value['name']}({fields})"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return " + ".join(format_component(v) for v in value)
    return format_cell(value)


def format_change(value: float | None) -> str:
    """A relative change as a table cell: ``+12.3``, ``-4.0``, ``+0.0``; ``-`` for none."""
    return "-" if value is None else f"{value:+.1f}"


class Formatter(Protocol):
    def __call__(self, runs: list[StoredRun], relative: list[Relative] | None = None) -> str: ...


def format_csv(runs: list[StoredRun], relative: list[Relative] | None = None) -> str:
    table = results_table(runs, relative)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([[format_cell(v) for v in row] for row in table.rows])
    return out.getvalue()


def format_json(runs: list[StoredRun], relative: list[Relative] | None = None) -> str:
    """Everything stored about each run, nothing dropped: for scripts. With ``relative``, each
    run also gets ``baseline`` (its baseline's id or null) and ``relative`` (metric -> %)."""
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(runs):
        row: dict[str, Any] = {
            "id": r.id,
            "sweep": r.sweep,
            "status": r.status,
            "config": r.config,
            "metrics": r.metrics,
            "error": r.error,
            "started": r.started,
            "finished": r.finished,
            "wall_seconds": r.wall_seconds,
            "artifacts_path": r.artifacts_path,
        }
        if relative is not None:
            row["baseline"] = relative[i].baseline
            row["relative"] = relative[i].change
        rows.append(row)
    return json.dumps(rows, indent=2)


def format_table(runs: list[StoredRun], relative: list[Relative] | None = None) -> str:
    table = results_table(runs, relative)
    changes = {i for i, c in enumerate(table.columns) if c in RELATIVE_METRICS.values()}
    rich_table = Table(*table.columns, title=f"{len(runs)} runs")
    for row in table.rows:
        rich_table.add_row(
            *(format_change(v) if i in changes else format_component(v) for i, v in enumerate(row))
        )
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(rich_table)
    return console.export_text()


FORMATS: Registry[Formatter] = Registry("results format")
FORMATS.register("table")(format_table)
FORMATS.register("csv")(format_csv)
FORMATS.register("json")(format_json)
