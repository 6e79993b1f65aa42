"""The plateau stopping rule (``attack.stop_on_plateau``): iterations and wall time saved against
the quality given up.

Inverting Gradients (breaching's settings in [0, 1] units, ``bench_helpers``) on the FedSGD
gradient of one CIFAR-10 test image per case, ConvNet-16-small, 1 thread, the whole budget
against each plateau rule (patience in iterations, relative tolerance), on the same gradient and
start. Prints per rule the iterations run, wall seconds and PSNR against the private image, per
image and on the mean. A rule that stops before the schedule's learning-rate drops gives up
what those drops would have bought: that is what this measures.

    OMP_NUM_THREADS=1 python bench/bench_plateau.py [--images 0 1 2] [--iterations 2000]
        [--rules 200:1e-3 400:1e-3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_helpers import LR, TV, cifar10_test, convnet16_small, gradleak_target, load, make_case
from bench_helpers import psnr as mean_psnr
from gradleak.attacks.base import ATTACKS
from gradleak.config import AttackConfig, PlateauConfig


def attack(
    case_index: int, iterations: int, rule: PlateauConfig | None
) -> tuple[int, float, float]:
    """(iterations run, wall seconds, PSNR) of IG on CIFAR-10 test image ``case_index``."""
    images, labels = cifar10_test(case_index + 1)
    case = make_case(convnet16_small, images[case_index:], labels[case_index:], normalise=True)
    target = gradleak_target(case)
    config = AttackConfig(
        name="inverting_gradients",
        iterations=iterations,
        lr=LR,
        tv_weight=TV,
        labels="given",
        stop_on_plateau=rule,
    )
    torch.manual_seed(1)
    began = time.perf_counter()
    rec = ATTACKS.get("inverting_gradients")(config).reconstruct(target)
    wall = time.perf_counter() - began
    return rec.iterations, wall, mean_psnr(rec.images, case.images)


def parse_rule(text: str) -> PlateauConfig:
    patience, tolerance = text.split(":")
    return PlateauConfig(patience=int(patience), tolerance=float(tolerance))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rules", nargs="+", default=["200:1e-3", "400:1e-3"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rules: list[tuple[str, PlateauConfig | None]] = [("none", None)]
    rules += [(text, parse_rule(text)) for text in args.rules]
    print(f"IG, ConvNet-16-small B=1, {args.iterations} it budget, 1 thread; load {load()}")
    print("| rule (patience:tolerance) | per image: iterations, s, PSNR dB | mean it | mean s "
          "| mean PSNR dB |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, rule in rules:
        rows = [attack(i, args.iterations, rule) for i in args.images]
        cells = "; ".join(
            f"{i}: {n}, {s:.1f}, {p:.2f}" for i, (n, s, p) in zip(args.images, rows, strict=True)
        )
        means = [statistics.fmean(r[k] for r in rows) for k in range(3)]
        print(f"| {name} | {cells} | {means[0]:.0f} | {means[1]:.1f} | {means[2]:.2f} |",
              flush=True)  # fmt: skip
    print(f"load {load()}")


if __name__ == "__main__":
    main()
