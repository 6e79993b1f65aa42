"""DLG at batch 1 on several data sets: PSNR and SSIM per image, and the mean ± spread over seeds.

The case is DLG's own (Zhu et al. 2019): its sigmoid LeNet (``lenet_dlg``, untrained, weights
uniform in [-0.5, 0.5]), one 32×32 image per FedSGD gradient, dummy image and soft label
optimised jointly (labels never given), L2 gradient distance, L-BFGS. Every attack option is
the attack's default unless ``--option`` changes it, so the figures are those of the shipped
configuration. A seed fixes both the model's weights and the attacker's random start; the
spread is the sample standard deviation of the per-seed means (and their range). The data sets'
test images are scored against the reconstructions only here, never shown to the attack.

    OMP_NUM_THREADS=1 python bench/bench_dlg.py [--quick] [--datasets cifar10 cifar100]
        [--images 4] [--seeds 0 1 2] [--steps 50] [--restarts 1] [--option line_search=none]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import yaml

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig, DataConfig, ModelConfig
from gradleak.data import load_dataset
from gradleak.metrics.scoring import score_reconstruction
from gradleak.models import build_model

SIZE = 32


@dataclass(frozen=True)
class Trial:
    dataset: str
    seed: int
    image: int
    psnr: float
    ssim: float
    label_ok: bool
    loss: float
    seconds: float


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values read as YAML scalars) for ``attack.options``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option needs KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def run_dataset(name: str, args: argparse.Namespace, options: dict[str, Any]) -> list[Trial]:
    data = load_dataset(DataConfig(name=name, max_images=args.images, image_size=SIZE), 0)
    images, labels = data.images.float(), data.labels
    channels = images.shape[1]
    trials = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        net = build_model(ModelConfig(name="lenet_dlg"), data.num_classes, channels, SIZE)
        for i in range(images.shape[0]):
            target = target_from_batch(net, images[i : i + 1], labels[i : i + 1])
            config = AttackConfig(
                name="dlg",
                iterations=args.steps,
                restarts=args.restarts,
                labels="recovered",
                options=options,
            )
            torch.manual_seed(seed)
            start = time.perf_counter()
            recon = ATTACKS.get("dlg")(config).reconstruct(target)
            seconds = time.perf_counter() - start
            score = score_reconstruction(recon.images, images[i : i + 1])
            label_ok = recon.labels is not None and int(recon.labels[0]) == int(labels[i])
            trial = Trial(
                name, seed, i, score.psnr_mean, score.ssim_mean, label_ok, recon.best_loss, seconds
            )
            print(
                f"| {name} | {seed} | {i} | {'yes' if label_ok else 'no'} | {trial.psnr:.2f} "
                f"| {trial.ssim:.3f} | {trial.loss:.2e} | {seconds:.0f} |",
                flush=True,
            )
            trials.append(trial)
    return trials


def summary(name: str, trials: list[Trial], threshold: float) -> str:
    seeds = sorted({t.seed for t in trials})
    psnr_means = [statistics.fmean(t.psnr for t in trials if t.seed == s) for s in seeds]
    ssim_means = [statistics.fmean(t.ssim for t in trials if t.seed == s) for s in seeds]

    def spread(values: list[float], digits: int) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return (
            f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f} "
            f"({min(values):.{digits}f}–{max(values):.{digits}f})"
        )

    below = sum(t.psnr < threshold for t in trials)
    labels = sum(t.label_ok for t in trials)
    images = len({t.image for t in trials})
    return (
        f"| {name} | {images} | {len(seeds)} | {spread(psnr_means, 2)} | {spread(ssim_means, 3)} "
        f"| {below} of {len(trials)} | {labels} of {len(trials)} "
        f"| {sum(t.seconds for t in trials):.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images, 2 seeds, 5 steps")
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"])
    parser.add_argument("--images", type=int, default=4, help="test images 0..N-1 per data set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50, help="L-BFGS steps per restart")
    parser.add_argument("--restarts", type=int, default=1, help="the attack's default")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.images, args.seeds, args.steps, args.restarts = 2, args.seeds[:2], 5, 1
    torch.set_num_threads(args.threads)
    options = parse_options(args.option)
    defaults = ATTACKS.get("dlg").Options.model_validate(options)
    print("# DLG at batch 1 (bench/bench_dlg.py)\n")
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}, threads {args.threads}, "
        f"torch {torch.__version__}; LeNet-DLG sigmoid, {SIZE}x{SIZE}, labels optimised jointly, "
        f"{args.steps} L-BFGS steps (<= {defaults.lbfgs_inner} evaluations each) x "
        f"{args.restarts} restarts (kept by matching loss); attack.options {defaults.model_dump()}\n"
    )
    print("| data set | seed | image | label right | PSNR (dB) | SSIM | best loss | s |")
    print("|---|---|---|---|---|---|---|---|")
    results = {name: run_dataset(name, args, options) for name in args.datasets}
    print(
        "\n| data set | images | seeds | PSNR mean ± sd over seeds (range) "
        "| SSIM mean ± sd (range) | images < 30 dB | labels right | wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, trials in results.items():
        print(summary(name, trials, 30.0))


if __name__ == "__main__":
    main()
