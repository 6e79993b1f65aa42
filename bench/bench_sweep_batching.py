"""Sweep batching: seed siblings optimised as one vmapped batch per worker, against one by one.

A sweep of N runs that differ only in their seed (Inverting Gradients on one CIFAR-10 image per
run, FedSGD, labels given, 1 thread, 1 worker) is run twice on the local backend, with the sweep
file's ``batch_runs`` at N (one batch) and at 1 (each run alone), in alternating order. Prints
each mode's sweep wall time (one worker on one thread, so wall time is the work, set-up and
store included), their ratio, and each mode's mean PSNR over the runs (the same runs, so the
same figure up to float noise: the batch replays each run's own start, gradient and labels).

    OMP_NUM_THREADS=1 python bench/bench_sweep_batching.py [--runs 8] [--iterations 200]
        [--models lenet_dlg convnet] [--repeats 2] [--batching auto|on]

Each line also says how many runs shared a batch: under ``attack.batch_restarts: auto`` a model
above the CPU cost rule (``attacks.batched_restarts.CPU_MAX_FLOPS``, e.g. the 8-layer
``convnet``) is not batched on a CPU, and ``--batching on`` measures what batching it would cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench_helpers import load
from gradleak.experiments.backends import BackendOptions
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import Sweep, expand
from gradleak.experiments.sweep_run import run_sweep

MODEL_OPTIONS: dict[str, dict[str, Any]] = {
    "lenet_dlg": {"name": "lenet_dlg"},
    # BatchNorm in eval mode, Inverting Gradients' setting: in train mode the shared running
    # statistics rule batching out.
    "convnet": {"name": "convnet", "width": 16, "train_mode": False},
}


def base_config(model: str, iterations: int, batching: str) -> dict[str, Any]:
    return {
        "data": {"name": "cifar10", "image_size": 32},
        "model": MODEL_OPTIONS[model],
        "federation": {"batch_size": 1, "protocol": "fedsgd"},
        "threat": {"knows_labels": True},
        "attack": {
            "name": "inverting_gradients",
            "iterations": iterations,
            "labels": "given",
            "batch_restarts": batching,
        },
        "metrics": {"lpips": False},
    }


def sweep_once(
    model: str, runs: int, iterations: int, batch_runs: int, batching: str
) -> tuple[float, float, int]:
    """One sweep's wall seconds, its runs' mean PSNR and the largest batch a run was part of."""
    planned = expand(base_config(model, iterations, batching), {"seed": list(range(runs))}, {}, {})
    sweep = Sweep(f"batch{batch_runs}", planned, batch_runs=batch_runs)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "r.db"
        began = time.perf_counter()
        summary = run_sweep(sweep, store, "local", BackendOptions(workers=1))
        wall = time.perf_counter() - began
        assert summary.done == runs, summary
        with ResultStore.open(store) as results:
            metrics = [r.metrics for r in results.runs(sweep.name) if r.metrics]
    psnrs = [m["psnr_mean"] for m in metrics]
    shared = max(int(m.get("batched_runs", 1)) for m in metrics)
    return wall, statistics.fmean(psnrs), shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--models", nargs="+", default=list(MODEL_OPTIONS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--batching",
        choices=("auto", "on"),
        default="auto",
        help="attack.batch_restarts: auto leaves models above its CPU cost rule unbatched",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.runs} seed siblings per sweep, {args.iterations} it, 1 worker; load {load()}")
    for model in args.models:
        walls: dict[int, list[float]] = {args.runs: [], 1: []}
        quality: dict[int, float] = {}
        shared: dict[int, int] = {}
        for repeat in range(args.repeats):
            order = (args.runs, 1) if repeat % 2 == 0 else (1, args.runs)
            for batch_runs in order:
                wall, psnr, most = sweep_once(
                    model, args.runs, args.iterations, batch_runs, args.batching
                )
                walls[batch_runs].append(wall)
                quality[batch_runs] = psnr
                shared[batch_runs] = most
        batched, alone = (statistics.median(walls[k]) for k in (args.runs, 1))
        print(
            f"{model}: batch_runs={args.runs} {batched:.1f} s (PSNR {quality[args.runs]:.2f} dB, "
            f"{shared[args.runs]} runs in a batch), "
            f"batch_runs=1 {alone:.1f} s (PSNR {quality[1]:.2f} dB); "
            f"one by one / batched {alone / batched:.2f}x; load {load()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
