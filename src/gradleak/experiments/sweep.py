"""Sweep files: a base config plus a grid, zipped lists and fixed settings, expanded into runs.

A sweep file is YAML with the keys ``base`` (a config file, relative to the sweep file or
absolute), ``grid`` (key path -> list, every combination; ``a.b+c.d`` ties several keys into one
axis whose values are lists), ``zip`` (key path -> lists of equal length, taken together), ``set`` (key path -> value, for every run) and an optional ``name``.

Every run is validated here, before anything runs, so that a typo in cell 37 of a grid fails
the whole sweep in a second rather than overnight. A run's id is a hash of its validated, fully
resolved config: the same experiment gets the same id whatever order the grid lists it in, which
is what lets an interrupted sweep resume by id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gradleak.config import (
    ExperimentConfig,
    apply_overrides,
    read_config_file,
    validate_config,
)
from gradleak.errors import ConfigError
from gradleak.experiments.backends import (
    Backend,
    BackendOptions,
    RunFunction,
    RunOutcome,
    RunTask,
    default_run_function,
    make_backend,
    now_iso,
)
from gradleak.experiments.preflight import effective_config, preflight
from gradleak.experiments.store import ResultStore

SWEEP_KEYS = frozenset({"name", "base", "grid", "zip", "set"})


@dataclass(frozen=True)
class PlannedRun:
    """One cell of a sweep: its id, its validated config and the values the sweep gave it."""

    id: str
    config: ExperimentConfig
    params: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """A named, fully expanded and validated sweep."""

    name: str
    runs: list[PlannedRun]


def run_id(config: ExperimentConfig) -> str:
    """Stable id of a run: a hash of its effective config (every default the attack chooses
    written in) as canonical JSON, so that ``attack.lr`` unset and set to the attack's own
    default are one experiment, and a run folder's ``config.yaml`` has its run's id."""
    effective = effective_config(config).model_dump(mode="json")
    canonical = json.dumps(effective, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _override(key: str, value: Any) -> str:
    """A ``key=value`` override whose value survives :func:`apply_overrides`' YAML parse."""
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def _mapping(spec: dict[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"sweep {key!r} must map key paths to values")
    return value


def _lists(section: str, mapping: dict[str, Any]) -> dict[str, list[Any]]:
    for key, values in mapping.items():
        if not isinstance(values, list):
            raise ConfigError(f"sweep {section} {key!r} must be a list of values")
        if not values:
            raise ConfigError(f"sweep {section} {key!r} is an empty list; give at least one value")
    return mapping


def _cells(grid: dict[str, list[Any]], zipped: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid, each crossed with every position of the zipped lists."""
    lengths = {len(values) for values in zipped.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{key} has {len(values)}" for key, values in zipped.items())
        raise ConfigError(f"sweep zip lists must have equal lengths ({detail})")
    zip_rows = [dict(zip(zipped, row, strict=True)) for row in zip(*zipped.values(), strict=True)]
    grid_rows = [
        _untie(dict(zip(grid, row, strict=True))) for row in itertools.product(*grid.values())
    ]
    return [{**g, **z} for g in grid_rows for z in (zip_rows or [{}])]


def _untie(cell: dict[str, Any]) -> dict[str, Any]:
    """Split tied grid axes: ``a.b+c.d: [[1, x], [2, y]]`` is one axis whose values set both
    keys together (a data set and the labels it needs), so the grid does not cross them."""
    out: dict[str, Any] = {}
    for key, value in cell.items():
        if "+" not in key:
            out[key] = value
            continue
        keys = key.split("+")
        if not isinstance(value, list) or len(value) != len(keys):
            raise ConfigError(
                f"sweep grid axis {key!r} ties {len(keys)} keys, so each of its values must be a "
                f"list of {len(keys)}, got {value!r}"
            )
        out.update(zip(keys, value, strict=True))
    return out


def expand(
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    zipped: dict[str, list[Any]],
    fixed: dict[str, Any],
) -> list[PlannedRun]:
    """Expand a raw base config into validated runs; raises ConfigError on the first bad cell."""
    overlap = (set(grid) & set(zipped)) | ((set(grid) | set(zipped)) & set(fixed))
    if overlap:
        raise ConfigError(
            f"sweep key {sorted(overlap)[0]!r} appears in more than one of grid/zip/set"
        )
    common = apply_overrides(base, [_override(k, v) for k, v in fixed.items()])
    runs: list[PlannedRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for params in _cells(grid, zipped):
        raw = apply_overrides(common, [_override(k, v) for k, v in params.items()])
        try:
            config = preflight(validate_config(raw))
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in params.items()) or "every run"
            raise ConfigError(f"sweep run ({where}): {exc}") from None
        rid = run_id(config)
        if rid in seen:
            raise ConfigError(f"sweep runs {seen[rid]} and {params} are the same experiment")
        seen[rid] = params
        runs.append(PlannedRun(rid, config, params))
    return runs


def load_sweep(path: Path) -> Sweep:
    """Read, expand and validate a sweep file."""
    path = Path(path)
    spec = read_config_file(path)
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:
        raise ConfigError(
            f"sweep file {path}: unknown key {unknown[0]!r}; known: {', '.join(sorted(SWEEP_KEYS))}"
        )
    base: dict[str, Any] = {}
    if spec.get("base") is not None:
        base_path = Path(str(spec["base"])).expanduser()
        base = read_config_file(base_path if base_path.is_absolute() else path.parent / base_path)
    runs = expand(
        base,
        _lists("grid", _mapping(spec, "grid")),
        _lists("zip", _mapping(spec, "zip")),
        _mapping(spec, "set"),
    )
    return Sweep(name=str(spec.get("name") or path.stem), runs=runs)


@dataclass(frozen=True)
class SweepSummary:
    """How a sweep invocation went; ``run_seconds`` sums the runs' own wall time."""

    total: int
    skipped: int
    done: int
    failed: int
    wall_seconds: float
    run_seconds: float


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        disable=not enabled,
    )


def _drive(
    sweep: Sweep, tasks: list[RunTask], backend: Backend, store: ResultStore, bar: Progress
) -> list[RunOutcome]:
    """Keep the backend full, commit each outcome as it arrives; on any interruption hand the
    runs in flight back to ``pending`` (a SIGKILL skips this; :meth:`ResultStore.plan` does it)."""
    queue, in_flight, outcomes = deque(tasks), set[str](), list[RunOutcome]()
    counts = {"done": 0, "failed": 0}
    bar_task = bar.add_task(sweep.name, total=len(tasks), done=0, failed=0)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < backend.capacity:
                task = queue.popleft()
                store.mark_running(sweep.name, task.id, now_iso(), str(task.output_dir))
                backend.submit(task)
                in_flight.add(task.id)
            for outcome in backend.wait():
                store.record(sweep.name, outcome)
                in_flight.discard(outcome.id)
                outcomes.append(outcome)
                counts[outcome.status] += 1
                if outcome.error:
                    bar.console.print(f"[red]failed[/] {outcome.id}: {outcome.error}")
                bar.update(bar_task, advance=1, done=counts["done"], failed=counts["failed"])
    except BaseException:
        store.mark_pending(sweep.name, in_flight)
        raise
    return outcomes


def _safe_dirname(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "sweep"


def run_sweep(
    sweep: Sweep,
    store_path: Path,
    backend: str = "local",
    options: BackendOptions | None = None,
    output_dir: Path | None = None,
    run: RunFunction = default_run_function,
    retry_failed: bool = False,
    progress: bool = False,
) -> SweepSummary:
    """Run every run of ``sweep`` not yet done in the store; safe to repeat after any interruption.

    Order matters for "store untouched": the store file is checked (read-only) and the backend
    started (a Ray address that does not answer fails here) before the store is created or written.
    Artefacts go to ``output_dir/<sweep>/<run id>`` (default: ``runs/`` beside the store); on a Ray
    cluster that folder must be on a file system every node shares.
    """
    t0 = time.perf_counter()
    store_path = Path(store_path)
    ResultStore.check(store_path)
    runs_root = (output_dir or store_path.parent / "runs").resolve() / _safe_dirname(sweep.name)
    engine = make_backend(backend, options or BackendOptions())
    try:
        with ResultStore.open(store_path) as store:
            store.plan(sweep.name, sweep.runs)
            redo = {"pending", "failed"} if retry_failed else {"pending"}
            statuses = store.statuses(sweep.name)
            tasks = [
                RunTask(r.id, r.config, runs_root / r.id, run)
                for r in sweep.runs
                if statuses[r.id] in redo
            ]
            with _progress(progress) as bar:
                outcomes = _drive(sweep, tasks, engine, store, bar)
    finally:
        engine.close()
    return SweepSummary(
        total=len(sweep.runs),
        skipped=len(sweep.runs) - len(tasks),
        done=sum(o.status == "done" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        wall_seconds=time.perf_counter() - t0,
        run_seconds=sum(o.wall_seconds for o in outcomes),
    )
