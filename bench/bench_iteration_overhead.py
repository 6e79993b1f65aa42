"""Per-iteration overhead of gradleak's attack step against a plain PyTorch loop of the same maths.

Inverting Gradients' maths (1 − cosine of the whole gradient + TV, Adam on the signed gradient,
MultiStepLR at 3/8, 5/8, 7/8 of the run, clamp to [0, 1], keep the lowest-loss iterate) on a
FedSGD gradient of one seeded random image, through ``ATTACKS.get("inverting_gradients")`` and
through the ~25-line loop in ``bench_helpers.py``, interleaved in one process at one thread (rotating order, so a
load spike on a shared machine hits both). Prints ms/it (wall and CPU time), the ratio
gradleak/plain and both final PSNRs against the private image (equal when the maths is equal).

    OMP_NUM_THREADS=1 python bench/bench_iteration_overhead.py [--iterations 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import Tensor

from bench_helpers import (
    Case,
    convnet16_small,
    lenet,
    make_case,
    psnr,
    run_gradleak,
    run_plain,
    seeded_images,
    timed,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners: dict[str, Callable[[Case, int], Tensor]] = {
        "gradleak": run_gradleak,
        "plain": run_plain,
    }
    for label, build in (("DLG-LeNet", lenet), ("ConvNet-16-small", convnet16_small)):
        case = make_case(build, *seeded_images(1), normalise=False)
        for fn in runners.values():
            fn(case, 20)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
        scores: dict[str, float] = {}
        for r in range(args.repeats):
            order = list(runners) if r % 2 == 0 else list(reversed(runners))
            for name in order:
                wall, cpu, out = timed(lambda f=runners[name], c=case: f(c, args.iterations))
                times[name].append((wall / args.iterations * 1e3, cpu / args.iterations * 1e3))
                scores[name] = psnr(out, case.images)
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in times.items()}  # fmt: skip
        g, p = med["gradleak"], med["plain"]
        print(
            f"{label} B=1 IG {args.iterations} it x{args.repeats}: "
            f"gradleak {g[0]:.2f} ms/it wall ({g[1]:.2f} CPU), plain {p[0]:.2f} ({p[1]:.2f}); "
            f"gradleak/plain wall {g[0] / p[0]:.3f} CPU {g[1] / p[1]:.3f}; "
            f"PSNR gradleak {scores['gradleak']:.2f} plain {scores['plain']:.2f}; "
            f"CPU repeats gl {[round(c, 2) for _, c in times['gradleak']]} "
            f"plain {[round(c, 2) for _, c in times['plain']]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
