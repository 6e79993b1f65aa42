"""Seconds per FedLeak iteration with each generator layout (``authors`` against ``wide``).

The generator dominates an iteration above 32 px (it runs twice per step, with the look-ahead),
so its channel layout sets the cost: this times a few whole iterations of the attack on one
FedSGD gradient of CIFAR-10 test images resized to the size asked for (ConvNet-8 sigmoid,
untrained, labels given), each layout ``--repeats`` times, in one process. The quality of the
images is not scored: too few iterations to mean anything.

    OMP_NUM_THREADS=1 python bench/bench_fedleak_layout.py [--sizes 64 128] [--batch 4]
        [--iterations 3] [--repeats 2] [--layouts wide authors]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.generator import LAYOUTS
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig, DataConfig, ModelConfig
from gradleak.data import load_dataset
from gradleak.fl.knowledge import Capabilities
from gradleak.models import build_model


def time_layout(size: int, batch: int, layout: str, iterations: int) -> float:
    """Seconds per iteration of one FedLeak run (setup included, a small share)."""
    data = load_dataset(DataConfig(name="cifar10", max_images=batch, image_size=size), 0)
    torch.manual_seed(0)
    net = build_model(ModelConfig(name="convnet", width=8, activation="sigmoid"), 10, 3, size)
    target = target_from_batch(
        net, data.images.float(), data.labels, capabilities=Capabilities(knows_labels=True)
    )
    config = AttackConfig(
        name="fedleak",
        iterations=iterations,
        labels="given",
        options={"generator_layout": layout},
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    ATTACKS.get("fedleak")(config).reconstruct(target)
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--layouts", nargs="+", default=["wide", "authors"], choices=LAYOUTS.names()
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}, threads {args.threads}, "
        f"batch {args.batch}, {args.iterations} iterations per run, ConvNet-8 sigmoid\n"
    )
    print("| size | layout | s/iteration (each run) |")
    print("|---|---|---|")
    for size in args.sizes:
        for layout in args.layouts:
            runs = [
                time_layout(size, args.batch, layout, args.iterations) for _ in range(args.repeats)
            ]
            each = ", ".join(f"{r:.2f}" for r in runs)
            print(f"| {size}x{size} | {layout} | {each} |", flush=True)


if __name__ == "__main__":
    main()
