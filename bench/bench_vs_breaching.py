"""gradleak vs breaching 0.1.2 vs a plain loop: Inverting Gradients side by side, one process.

Same model, CIFAR-10 batch (the first B test images), target gradient, start (breaching gets
gradleak's seeded ``torch.rand`` start, normalised, as ``initial_data``), budget and one thread;
interleaved in rotating order so a load spike on a shared machine hits every runner. Prints
ms/it (wall and CPU), CPU-time ratios and PSNR for DLG-LeNet and ConvNet-16-small at B=1 and
B=8, then 8 single-image attacks (gradleak batched with vmap, breaching one after another), then
time to quality (``bench_ttq.py``: breaching's final PSNR after 2000 iterations, 500 with
``--quick``, on ConvNet-16-small B=1, and the wall time gradleak needs to reach it), and
ends with ``gradleak/plain max R1, gradleak/breaching max R2, 8-attack throughput vs breaching
T×``: R1, R2 the largest CPU-time ratios over the four configurations, T the smaller of the two
models' breaching-sequential / gradleak-batched CPU times. CPU times are the figures to quote:
at one thread they are the work done, wall times scatter with the machine's load.

breaching needs its own environment (``../shared/docs/PERF.md``): on first use the bench makes one
under ``~/.cache/gradleak/bench-breaching`` (``--cache``) and re-runs itself there with this
checkout's ``src`` first on the path; ``--python`` names one you prepared. When breaching cannot
be had, one line says why and the gradleak/plain part still runs.

    OMP_NUM_THREADS=1 python bench/bench_vs_breaching.py [--quick] [--python PY] [--no-breaching]
        [--ttq]  # time to quality only, its summary last
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
IN_ENV = "GRADLEAK_BENCH_IN_ENV"
CONFIGS = (("DLG-LeNet", 1), ("ConvNet-16-small", 1), ("DLG-LeNet", 8), ("ConvNet-16-small", 8))
TRIALS = 8


@dataclass(frozen=True)
class Budget:
    iterations: int
    warmup: int
    repeats: int
    throughput_iterations: int
    throughput_repeats: int


FULL = Budget(200, 20, 3, 200, 2)
QUICK = Budget(60, 10, 2, 60, 1)
TTQ_FULL, TTQ_QUICK = 2000, 500


def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"load {os.getloadavg()}"


def reexec_in_environment(args: argparse.Namespace) -> str:
    """Replace this process by the bench in breaching's environment; returns only on failure,
    with the one-line reason."""
    if os.environ.get(IN_ENV):
        return f"breaching does not import in {sys.executable}"
    try:
        if args.python:
            python = Path(args.python)
        else:
            from breaching_env import ensure_environment

            python = ensure_environment(Path(args.cache).expanduser())
    except (RuntimeError, OSError) as exc:
        return f"setting up breaching failed: {exc}"
    if not python.exists():
        return f"--python {python} does not exist"
    env = dict(os.environ)
    env[IN_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    sys.stdout.flush()
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)
    return "unreachable"  # pragma: no cover


def load_breaching() -> tuple[Any, str]:
    """(the driver, "") when breaching imports here, else (None, the one-line reason)."""
    if importlib.util.find_spec("breaching") is None:
        return None, "breaching is not installed"
    try:
        from breaching_driver import Breaching

        return Breaching(), ""
    except Exception as exc:  # a broken install: say so, still bench gradleak
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"breaching does not import: {type(exc).__name__}: {first}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleave(
    runners: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """Wall and CPU seconds of each runner over rotating orders, and each one's last output."""
    from bench_helpers import rotations, timed

    walls: dict[str, list[float]] = {k: [] for k in runners}
    cpus: dict[str, list[float]] = {k: [] for k in runners}
    outputs: dict[str, Any] = {}
    for order in rotations(list(runners), repeats):
        for name in order:
            wall, cpu, out = timed(runners[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
            outputs[name] = out
    return walls, cpus, outputs


def per_iteration(model: str, batch: int, budget: Budget, br: Any) -> dict[str, float]:
    """One configuration; returns the CPU-time ratios it printed."""
    from bench_helpers import (
        MODELS,
        cifar10_test,
        load,
        make_case,
        psnr,
        psnr_matched,
        run_gradleak,
        run_plain,
    )

    images, labels = cifar10_test(batch)
    case = make_case(MODELS[model], images, labels, normalise=True)
    makers: dict[str, Callable[[int], Any]] = {
        "gradleak": lambda n: run_gradleak(case, n),
        "plain": lambda n: run_plain(case, n),
    }
    if br is not None:
        makers["breaching"] = br.runner(case)
    for make in makers.values():
        make(budget.warmup)  # also lets breaching's TorchScript cosine specialise
    before = load()
    n = budget.iterations
    walls, cpus, outs = interleave(
        {k: (lambda m=m: m(n)) for k, m in makers.items()}, budget.repeats
    )
    ms = {k: (1e3 * median(walls[k]) / n, 1e3 * median(cpus[k]) / n) for k in makers}
    times = ", ".join(f"{k} {w:.2f} ({c:.2f})" for k, (w, c) in ms.items())
    scores = ", ".join(
        f"{k} {psnr(o, images):.2f}" + (f"/{psnr_matched(o, images):.2f}" if batch > 1 else "")
        for k, o in outs.items()
    )
    ratios = {"gl/plain": ms["gradleak"][1] / ms["plain"][1]}
    if "breaching" in ms:
        ratios["gl/br"] = ms["gradleak"][1] / ms["breaching"][1]
        ratios["br/plain"] = ms["breaching"][1] / ms["plain"][1]
    shown = ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
    matched = " (in order/matched)" if batch > 1 else ""
    print(
        f"{model} B={batch}, {n} it x{budget.repeats}: ms/it wall (CPU) {times}; "
        f"CPU ratios {shown}; PSNR dB{matched} {scores}; load {before}->{load()}",
        flush=True,
    )
    return ratios


def throughput(model: str, budget: Budget, br: Any) -> float | None:
    """8 single-image attacks; returns breaching-sequential / gradleak-batched CPU time."""
    from torch import Tensor, cat

    from bench_helpers import (
        MODELS,
        cifar10_test,
        load,
        make_case,
        psnr,
        run_gradleak,
        run_gradleak_batched,
        run_plain,
    )

    images, labels = cifar10_test(TRIALS)
    cases = [
        make_case(MODELS[model], images[i : i + 1], labels[i : i + 1], normalise=True)
        for i in range(TRIALS)
    ]

    def sequential(run: Callable[[Any, int], Tensor]) -> Callable[[int], Tensor]:
        return lambda n: cat([run(c, n) for c in cases])  # each attack's set-up included

    makers: dict[str, Callable[[int], Tensor]] = {
        "gradleak batched": lambda n: run_gradleak_batched(cases, n),
        "gradleak sequential": sequential(run_gradleak),
        "plain sequential": sequential(run_plain),
    }
    if br is not None:
        makers["breaching sequential"] = sequential(lambda c, n: br.runner(c)(n))
    for make in makers.values():
        make(budget.warmup)
    before = load()
    n = budget.throughput_iterations
    walls, cpus, outs = interleave(
        {k: (lambda m=m: m(n)) for k, m in makers.items()}, budget.throughput_repeats
    )
    times = ", ".join(
        f"{k} {median(walls[k]):.2f} ({median(cpus[k]):.2f}) PSNR {psnr(outs[k], images):.2f}"
        for k in makers
    )
    base = "breaching sequential" if br is not None else "gradleak sequential"
    speedup = median(cpus[base]) / median(cpus["gradleak batched"])
    print(
        f"{model} {TRIALS} single-image attacks, {n} it x{budget.throughput_repeats}: "
        f"s wall (CPU) {times}; {base}/gradleak batched CPU {speedup:.2f}x; "
        f"load {before}->{load()}",
        flush=True,
    )
    return speedup if br is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 iterations, 2 repeats")
    parser.add_argument("--python", help="an interpreter with breaching 0.1.2 (PERF.md recipe)")
    parser.add_argument("--cache", default=None, help="where the bench makes its environment")
    parser.add_argument("--no-breaching", action="store_true", help="gradleak and plain only")
    parser.add_argument("--iterations", type=int, help="override the budget's iterations")
    parser.add_argument("--repeats", type=int, help="override the budget's repeats")
    parser.add_argument("--ttq", action="store_true", help="only the time-to-quality part")
    parser.add_argument("--ttq-iterations", type=int, help="breaching's budget for time to quality")
    args = parser.parse_args()
    if args.cache is None:
        from breaching_env import default_cache

        args.cache = str(default_cache())
    br, why = None, "skipped (--no-breaching)"
    if not args.no_breaching:
        why = ""
        if importlib.util.find_spec("breaching") is None:
            why = reexec_in_environment(args)  # returns only when that is impossible
        if not why:
            br, why = load_breaching()
    import torch

    torch.set_num_threads(1)
    budget = QUICK if args.quick else FULL
    if args.iterations or args.repeats:
        n, r = args.iterations or budget.iterations, args.repeats or budget.repeats
        budget = Budget(n, min(budget.warmup, n), r, n, min(r, budget.throughput_repeats))
    print(
        f"gradleak vs breaching vs plain, IG, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, {os.cpu_count()} CPUs; {uptime()}",
        flush=True,
    )
    print(f"breaching {br.version}" if br is not None else f"breaching: not run: {why}")
    from bench_ttq import time_to_quality

    ttq_n = args.ttq_iterations or (TTQ_QUICK if args.quick else TTQ_FULL)
    if args.ttq:
        summary = time_to_quality(ttq_n, br)
        print(f"after: {uptime()}")
        print(summary)
        return
    ratios = [per_iteration(model, batch, budget, br) for model, batch in CONFIGS]
    speedups = [throughput(model, budget, br) for model in ("DLG-LeNet", "ConvNet-16-small")]
    print(time_to_quality(ttq_n, br), flush=True)
    print(f"after: {uptime()}")
    r1 = max(r["gl/plain"] for r in ratios)
    r2 = f"{max(r['gl/br'] for r in ratios):.2f}" if br is not None else "n/a"
    tput = f"{min(s for s in speedups if s is not None):.2f}×" if br is not None else "n/a"
    print(
        f"gradleak/plain max {r1:.2f}, gradleak/breaching max {r2}, "
        f"8-attack throughput vs breaching {tput}"
    )


if __name__ == "__main__":
    main()
