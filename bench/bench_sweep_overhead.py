"""Sweep overhead: the fraction of a sweep's wall time spent outside the runs themselves.

A sweep of 20 tiny real runs (LeNet, 5 attack iterations, bundled samples) on the local backend.
Overhead = 1 - (sum of the runs' own wall times / workers) / sweep wall time: worker start-up,
imports, pickling, store writes and scheduling. Target: below 10 %.

    .venv/bin/python bench/bench_sweep_overhead.py [--runs 20] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from gradleak.experiments.backends import BackendOptions
from gradleak.experiments.sweep import Sweep, expand
from gradleak.experiments.sweep_run import run_sweep

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "federation": {"batch_size": 1},
    "attack": {"name": "inverting_gradients", "iterations": 5},
    "metrics": {"lpips": False},
}


def measure(runs: int, workers: int) -> tuple[float, float, float]:
    """Sweep wall time, summed run time, and overhead fraction for one worker count."""
    sweep = Sweep("bench", expand(TINY, {"seed": list(range(runs))}, {}, {}))
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_sweep(sweep, Path(tmp) / "r.db", "local", BackendOptions(workers=workers))
    assert summary.done == runs, summary
    busy = summary.run_seconds / workers
    return summary.wall_seconds, summary.run_seconds, 1 - busy / summary.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"{'workers':>7} {'runs':>5} {'sweep wall s':>12} {'sum run s':>10} {'overhead':>9}")
    for workers in args.workers:
        wall, busy, overhead = measure(args.runs, workers)
        print(f"{workers:>7} {args.runs:>5} {wall:>12.1f} {busy:>10.1f} {overhead:>9.1%}")


if __name__ == "__main__":
    main()
