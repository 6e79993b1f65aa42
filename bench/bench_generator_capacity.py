"""How well FedLeak's untrained generator can represent a batch at all: an oracle ceiling.

The generator (``attacks.generator.ImageGenerator``, as the attack builds it) is fitted with the
attack's own optimiser (AdamW on signed gradients) to the true images themselves, by mean
absolute error, and the fit is scored with the attack's metrics. This uses the ground truth on
purpose and is not an attack: it says whether a poor FedLeak reconstruction is the prior's
capacity (a low ceiling) or the gradient matching (a high one).

    OMP_NUM_THREADS=1 python bench/bench_generator_capacity.py [--widths 32 64] [--lrs 0.01 0.003]
        [--iterations 300] [--batch 16] [--dataset cifar10] [--seed 0]
"""

from __future__ import annotations

import argparse
import os

import torch

from gradleak.attacks.generator import ImageGenerator
from gradleak.config import DataConfig
from gradleak.data import load_dataset
from gradleak.metrics.scoring import score_reconstruction

CHECKPOINTS = (50, 150, 300, 600, 1000)


def fit(images: torch.Tensor, width: int, lr: float, iterations: int, seed: int) -> None:
    torch.manual_seed(seed)
    batch, channels, side, _ = images.shape
    generator = ImageGenerator(side, channels, 128, width)
    code = torch.randn(batch, 128)
    optimiser = torch.optim.AdamW(generator.parameters(), lr=lr)
    for iteration in range(1, iterations + 1):
        loss = (generator(code) - images).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        for parameter in generator.parameters():
            assert parameter.grad is not None
            parameter.grad.sign_()
        optimiser.step()
        if iteration in CHECKPOINTS or iteration == iterations:
            with torch.no_grad():
                report = score_reconstruction(generator(code).clamp(0, 1), images)
            print(
                f"| {width} | {lr:g} | {iteration} | {report.psnr_mean:.2f} | "
                f"{report.ssim_mean:.3f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.003])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = DataConfig(name=args.dataset, max_images=args.batch, shuffle=True)
    images = load_dataset(spec, args.seed).images.float()
    print(
        f"{args.dataset} test, {args.batch} images (seeded shuffle, seed {args.seed}); 1 thread; "
        f"load average at start {os.getloadavg()[0]:.2f}\n"
    )
    print("| generator width | lr | iteration | PSNR dB | SSIM |\n|---|---|---|---|---|")
    for width in args.widths:
        for lr in args.lrs:
            fit(images, width, lr, args.iterations, args.seed)


if __name__ == "__main__":
    main()
