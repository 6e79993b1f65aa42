"""Reading a results store back: filters on config keys, the columns worth showing, and the
``table``/``csv``/``json`` formats of ``gradleak results``.

A sweep's runs differ only in a few config keys; the rest is noise in a table. So the columns
are the keys whose values differ among the selected runs, found from the stored configs rather
than from the sweep file: this works for several sweeps in one store and for edited sweeps.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from gradleak.errors import ConfigError
from gradleak.experiments.store import ResultStore, StoredRun
from gradleak.registry import Registry

METRIC_COLUMNS = ("psnr_mean", "ssim_mean", "lpips_mean", "label_accuracy")
RUN_FIELDS = ("sweep", "status")


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


def select(runs: list[StoredRun], where: list[str]) -> list[StoredRun]:
    """Runs whose config keys (or ``sweep``/``status``) equal every ``key.path=value`` given."""
    known = set(RUN_FIELDS).union(*(flatten(r.config) for r in runs))
    filters: list[tuple[str, Any]] = []
    for text in where:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--where expects key.path=value, got {text!r}")
        if runs and key.strip() not in known:
            raise ConfigError(f"--where key {key.strip()!r} is not a config key of any stored run")
        filters.append((key.strip(), yaml.safe_load(raw) if raw.strip() else ""))
    return [r for r in runs if all(_matches(_fields(r).get(k), v) for k, v in filters)]


def varying_keys(runs: list[StoredRun]) -> list[str]:
    """Config keys whose values differ among ``runs``, in config order."""
    flats = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


@dataclass(frozen=True)
class ResultsTable:
    """The selected runs as rows of plain values under named columns."""

    columns: list[str]
    rows: list[list[Any]]


def results_table(runs: list[StoredRun]) -> ResultsTable:
    """Id, status, the varying config keys, main metrics, run time and error, one row per run."""
    keys = varying_keys(runs)
    if len({r.sweep for r in runs}) > 1:
        keys = ["sweep", *keys]
    columns = ["id", "status", *keys, *METRIC_COLUMNS, "wall_seconds", "error"]
    rows = []
    for run in runs:
        fields, metrics = _fields(run), run.metrics or {}
        rows.append(
            [run.id, run.status]
            + [fields.get(k) for k in keys]
            + [metrics.get(m) for m in METRIC_COLUMNS]
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


def format_csv(runs: list[StoredRun]) -> str:
    table = results_table(runs)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([[format_cell(v) for v in row] for row in table.rows])
    return out.getvalue()


def format_json(runs: list[StoredRun]) -> str:
    """Everything stored about each run, nothing dropped: for scripts."""
    return json.dumps(
        [
            {
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
            for r in runs
        ],
        indent=2,
    )


def format_table(runs: list[StoredRun]) -> str:
    table = results_table(runs)
    rich_table = Table(*table.columns, title=f"{len(runs)} runs")
    for row in table.rows:
        rich_table.add_row(*(format_cell(v) for v in row))
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(rich_table)
    return console.export_text()


FORMATS: Registry[Callable[[list[StoredRun]], str]] = Registry("results format")
FORMATS.register("table")(format_table)
FORMATS.register("csv")(format_csv)
FORMATS.register("json")(format_json)
