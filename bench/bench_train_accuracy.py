"""Does the simulated FL learn? Test accuracy within a wall-clock budget.

CIFAR-10 subset (train batches; tested on test_batch), ConvNet, 10 clients, Dirichlet α = 0.5,
FedAvg (configs/train_cifar10.yaml); then Krum and Median while 2 of the 10 clients send
sign-flipped updates. Prints the accuracy after each round and the best within the budget.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_train_accuracy.py [--budget 300]
[--only mean,krum,median] [--set model.width=4]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from gradleak.config import load_config
from gradleak.experiments.threats import build_model_for
from gradleak.fl.build import build_federation
from gradleak.fl.evaluation import train_and_test

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = {
    "mean": "train_cifar10.yaml",
    "krum": "train_cifar10_krum.yaml",
    "median": "train_cifar10_median.yaml",
}


def run(name: str, budget: float, overrides: list[str]) -> None:
    config = load_config(CONFIGS / VARIANTS[name], [*overrides, "federation.rounds=1000"])
    started = time.perf_counter()
    train, test, _ = train_and_test(config)
    federation = build_federation(
        config, train, build_model_for(config, train, torch.device("cpu"))
    )
    curve: list[float] = []
    while time.perf_counter() - started < budget:
        federation.run_round()
        curve.append(federation.evaluate(test.images, test.labels))
    elapsed = time.perf_counter() - started
    print(
        f"{name}: {len(curve)} rounds in {elapsed:.0f} s, best {max(curve):.3f}, final "
        f"{curve[-1]:.3f}, curve {[round(a, 3) for a in curve]}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per variant")
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, load {os.getloadavg()}")
    for name in args.only.split(","):
        run(name, args.budget, args.set)


if __name__ == "__main__":
    main()
