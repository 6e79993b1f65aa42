"""``attack.compile`` on CPU: Inverting Gradients with and without the compiled step.

The bench's two models (DLG-LeNet, ConvNet-16-small; ``bench_helpers``) at B=1 on the first
CIFAR-10 test image, normalised input, breaching's IG settings translated (as
``bench_vs_breaching.py``), one thread. Each run is one ``reconstruct`` call; a progress
callback stamps wall and CPU time after the first iteration and at the end, so the figures
split into the first iteration (which holds the compilation: each attack compiles its own step,
Inductor's on-disk cache making later compilations cheaper) and the steady ms/it of the rest.
Eager and compiled runs alternate so a load spike hits both. Prints PSNR of both (they must
agree: the compiled step computes the same maths).

    OMP_NUM_THREADS=1 python bench/bench_compile.py [--iterations 300] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from bench_helpers import LR, MODELS, TV, cifar10_test, gradleak_target, make_case, psnr
from gradleak.attacks.base import ATTACKS
from gradleak.config import AttackConfig


def run(case, iterations: int, compile_step: bool) -> tuple[float, float, float, float]:
    """(first-iteration wall s, steady ms/it wall, steady ms/it CPU, PSNR dB)."""
    stamps: list[tuple[int, float, float]] = []

    def callback(step: int, _loss: float) -> None:
        stamps.append((step, time.perf_counter(), time.process_time()))

    config = AttackConfig(
        name="inverting_gradients", iterations=iterations, lr=LR, tv_weight=TV,
        labels="given", log_every=1, compile=compile_step,
    )  # fmt: skip
    target = gradleak_target(case)
    torch.manual_seed(1)
    start = time.perf_counter()
    recon = ATTACKS.get("inverting_gradients")(config).reconstruct(target, callback)
    (s0, w0, c0), (s1, w1, c1) = stamps[0], stamps[-1]
    steps = s1 - s0
    return (
        w0 - start,
        1e3 * (w1 - w0) / steps,
        1e3 * (c1 - c0) / steps,
        psnr(recon.images, case.images),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load {os.getloadavg()[0]:.2f}", flush=True)
    images, labels = cifar10_test(1)
    for model in ("DLG-LeNet", "ConvNet-16-small"):
        case = make_case(MODELS[model], images, labels, normalise=True)
        rows: dict[bool, list[tuple[float, float, float, float]]] = {False: [], True: []}
        for r in range(args.repeats):
            for flag in (False, True) if r % 2 == 0 else (True, False):
                rows[flag].append(run(case, args.iterations, flag))
        out = []
        for flag, name in ((False, "eager"), (True, "compiled")):
            first = [round(x[0], 2) for x in rows[flag]]
            wall = statistics.median(x[1] for x in rows[flag])
            cpu = statistics.median(x[2] for x in rows[flag])
            out.append(
                f"{name} {wall:.2f} ms/it wall ({cpu:.2f} CPU), first it s {first}, "
                f"PSNR {rows[flag][-1][3]:.2f}"
            )
        e_cpu = statistics.median(x[2] for x in rows[False])
        c_cpu = statistics.median(x[2] for x in rows[True])
        print(
            f"{model} B=1 IG {args.iterations} it x{args.repeats}: {'; '.join(out)}; "
            f"compiled/eager CPU {c_cpu / e_cpu:.3f}; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
