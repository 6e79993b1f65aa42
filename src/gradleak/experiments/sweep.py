"""Sweep files: a base config plus a grid, zipped lists and fixed settings, expanded into runs.

A sweep file is YAML with the keys ``base`` (a config file, relative to the sweep file or
absolute), ``grid`` (key path -> list, every combination; ``a.b+c.d`` ties several keys into one
axis whose values are lists), ``zip`` (key path -> lists of equal length, taken together), ``set`` (key path -> value, for every run), an optional ``name`` and optional
``resources`` (``cpus_per_run``, ``gpus_per_run``: what each run reserves on a backend;
``gpus_per_run: 0.25`` lets four small attacks share one GPU) and ``slurm`` (partition,
account, timeout_min, mem_gb, array_parallelism: for the ``slurm`` backend's job arrays) and
``batch_runs`` (default 8; 1 turns it off): the most runs that differ only in their seed one
worker takes together, their attacks optimised as one batch where they can
(``experiments.run_batches``).

Every run is validated here, before anything runs, so that a typo in cell 37 of a grid fails
the whole sweep in a second rather than overnight. A run's id is a hash of its validated, fully
resolved config: the same experiment gets the same id whatever order the grid lists it in, which
is what lets an interrupted sweep resume by id. Running the runs is :mod:`.sweep_run`'s job.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradleak.config import (
    ExperimentConfig,
    apply_overrides,
    read_config_file,
    validate_config,
)
from gradleak.errors import ConfigError
from gradleak.experiments.backends.sizing import RunResources, parse_resources
from gradleak.experiments.backends.slurm_settings import SlurmSettings, parse_slurm
from gradleak.experiments.preflight import effective_config, preflight

SWEEP_KEYS = frozenset({"name", "base", "grid", "zip", "set", "resources", "slurm", "batch_runs"})
BATCH_RUNS = 8
"""The most runs one worker takes together by default (``experiments.run_batches``)."""
MAX_BATCH_RUNS = 4096


@dataclass(frozen=True)
class PlannedRun:
    """One cell of a sweep: its id, its validated config and the values the sweep gave it."""

    id: str
    config: ExperimentConfig
    params: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """A named, fully expanded and validated sweep, with what each of its runs reserves."""

    name: str
    runs: list[PlannedRun]
    resources: RunResources = field(default_factory=RunResources)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    batch_runs: int = BATCH_RUNS

    def devices(self) -> tuple[str, ...]:
        """The devices the runs ask for, so that a backend can refuse a GPU it lacks."""
        return tuple(sorted({run.config.device for run in self.runs}))


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
    spec = read_config_file(path, "sweep file")
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
    resources = parse_resources(spec.get("resources"), f"sweep file {path}: resources")
    slurm = parse_slurm(spec.get("slurm"), f"sweep file {path}: slurm")
    batch_runs = _batch_runs(spec.get("batch_runs", BATCH_RUNS), path)
    return Sweep(str(spec.get("name") or path.stem), runs, resources, slurm, batch_runs)


def _batch_runs(value: object, path: Path) -> int:
    """``batch_runs`` as a whole number from 1 to :data:`MAX_BATCH_RUNS`, or one ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH_RUNS:
        raise ConfigError(
            f"sweep file {path}: batch_runs must be a whole number from 1 to {MAX_BATCH_RUNS} "
            f"(1: no batching), got {value!r}"
        )
    return value
