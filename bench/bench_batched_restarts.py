"""Restarts one after another vs as one vmapped batch (``attack.batch_restarts``), per model.

Inverting Gradients with R restarts on the first B CIFAR-10 test images (DLG-LeNet and
ConvNet-16-small at B = 1 and 8, as ``bench_vs_breaching.py``), labels given, 1 thread; the two
modes interleaved in rotating order. Prints each configuration's forward FLOPs per trial, what
``auto`` chooses there, CPU seconds of both modes, their ratio, the restart each selected and
its PSNR (they should agree: the same draws and loss). ``attacks.batched_restarts.CPU_MAX_FLOPS``
comes from these figures.

    OMP_NUM_THREADS=1 python bench/bench_batched_restarts.py [--restarts 4] [--iterations 100]
        [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bench_helpers import (
    LR,
    MODELS,
    TV,
    Case,
    cifar10_test,
    gradleak_target,
    load,
    make_case,
    psnr,
    rotations,
    timed,
)
from gradleak.attacks.base import ATTACKS, Reconstruction
from gradleak.attacks.batched_restarts import CPU_MAX_FLOPS, forward_flops, worth_batching
from gradleak.config import AttackConfig

CONFIGS = (("DLG-LeNet", 1), ("ConvNet-16-small", 1), ("DLG-LeNet", 8), ("ConvNet-16-small", 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"IG, {args.restarts} restarts x {args.iterations} it, x{args.repeats}, 1 thread; "
        f"auto batches on CPU up to {CPU_MAX_FLOPS:.2g} forward FLOPs per trial",
        flush=True,
    )
    for model, batch in CONFIGS:
        images, labels = cifar10_test(batch)
        case = make_case(MODELS[model], images, labels, normalise=True)

        def run(mode: str, n: int = args.iterations, case: Case = case) -> Reconstruction:
            config = AttackConfig(
                name="inverting_gradients", iterations=n, lr=LR, tv_weight=TV, labels="given",
                restarts=args.restarts, batch_restarts=mode,
            )  # fmt: skip
            torch.manual_seed(1)
            return ATTACKS.get("inverting_gradients")(config).reconstruct(gradleak_target(case))

        for mode in ("off", "on"):
            run(mode, 3)  # warm-up
        before = load()
        cpus: dict[str, list[float]] = {"off": [], "on": []}
        outs: dict[str, Reconstruction] = {}
        for order in rotations(["off", "on"], args.repeats):
            for mode in order:
                _, cpu, outs[mode] = timed(lambda m=mode: run(m))
                cpus[mode].append(cpu)
        seq, bat = statistics.median(cpus["off"]), statistics.median(cpus["on"])
        target = gradleak_target(case)
        picks = ", ".join(
            f"{m} restart {outs[m].extra['best_restart']} PSNR {psnr(outs[m].images, images):.2f}"
            for m in ("off", "on")
        )
        print(
            f"{model} B={batch}: forward {forward_flops(target):.3g} FLOPs/trial, auto "
            f"{'batches' if worth_batching(target) else 'sequential'}; CPU s sequential "
            f"{seq:.2f}, batched {bat:.2f}, sequential/batched {seq / bat:.2f}x; {picks}; "
            f"load {before}->{load()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
