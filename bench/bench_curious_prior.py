"""The curious client with and without the Real-ESRGAN x4plus prior (issue 15), per seed.

Each reconstruction runs the shipped ``configs/curious_client.yaml`` (4 clients × 4 images,
lenet_rog, FedAvg τ = 3, s = 4 then refine_scales [2, 1]) with the prior's decoder stage, and
scores three sets of images of the same run on the peers' 12 images:

- ``none``: the raw inversion before any prior (what the attack without a prior returns: the
  prior only acts after the last stage, from the same generator);
- ``post``: Real-ESRGAN applied to the raw images' ¼-size (area) content;
- ``decode``: a last stage that optimises the ¼-size latent *through* Real-ESRGAN against the
  gradient-matching loss, started from ``post``; ``none+`` is the raw inversion given the same
  extra iterations at full resolution, so ``decode`` is compared at equal matching budget.

Two reference rows per run come from the truth (scoring only, never the attack): the 4×-downsampled
truth upsampled bicubically and super-resolved by the prior, the ceilings of a ¼-size latent.

Data: CIFAR-10 test images and the 16 FedLeak showcase photos (at 32², the config's size).
Run: ``OMP_NUM_THREADS=1 python bench/bench_curious_prior.py --seeds 0 1 --iterations 100
--decoder-iterations 30``. Prints one Markdown row per (data set, seed, variant) and the means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from gradleak.attacks.curious_client import CuriousClient, started_from
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import trial_generator
from gradleak.attacks.parametrizations import PARAMETRIZATIONS, ParametrizationSettings
from gradleak.attacks.target import AttackTarget
from gradleak.config import ExperimentConfig, load_config
from gradleak.experiments.threats.peer import curious_peer
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.scoring import score_reconstruction
from gradleak.priors.base import PriorOptions
from gradleak.priors.catalog import RealESRGANPrior

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "curious_client.yaml"
DATASETS = ("cifar10", "fedleak_showcase")


def config_for(data: str, seed: int, labels: str, iterations: int) -> ExperimentConfig:
    return load_config(
        CONFIG,
        [
            f"seed={seed}",
            f"data.name={data}",
            f"attack.labels={labels}",
            f"threat.knows_labels={labels == 'given'}",
            f"attack.iterations={iterations}",
        ],
    )


LPIPS_NET: list[LPIPS | None] = []


def score(images: torch.Tensor, truth: torch.Tensor) -> tuple[float, float, float | None]:
    """Matched PSNR, SSIM and (when its weights are installed) LPIPS-alex on the peers' images."""
    if not LPIPS_NET:
        LPIPS_NET.append(LPIPS.load("alex"))
    report = score_reconstruction(images.detach().cpu(), truth.cpu(), None, None, LPIPS_NET[0])
    return report.psnr_mean, report.ssim_mean, report.lpips_mean


def run(config: ExperimentConfig, decoder_iterations: int, decoder_lr: float) -> list[dict]:
    """One reconstruction with the decoder stage; the scores of none, post and decode."""
    torch.manual_seed(config.seed)
    scenario = curious_peer(config, torch.device("cpu"))
    truth = scenario.truth.images
    prior = PriorOptions(
        name="realesrgan",
        refine=False,
        decoder_iterations=decoder_iterations,
        decoder_lr=decoder_lr,
    )
    options = config.attack.options | {"prior": prior.model_dump()}
    attack = CuriousClient(config.attack.model_copy(update={"options": options}))
    start = time.perf_counter()
    recon = attack.reconstruct(scenario.target)
    seconds = time.perf_counter() - start
    raw = recon.extra["raw_images"]
    began = time.perf_counter()
    post = RealESRGANPrior().refine(raw, prior, 4)
    post_seconds = time.perf_counter() - began
    rows = [
        *references(truth, prior),
        {"variant": "none", "scores": score(raw, truth), "seconds": seconds},
        {"variant": "post", "scores": score(post, truth), "seconds": post_seconds},
        {"variant": "decode", "scores": score(recon.images, truth), "seconds": seconds},
    ]
    began = time.perf_counter()
    longer = more_of_the_same(attack, scenario.target, raw, decoder_iterations, decoder_lr)
    rows.append(
        {"variant": "none+", "scores": score(longer, truth), "seconds": time.perf_counter() - began}
    )
    return rows


def references(truth: torch.Tensor, prior: PriorOptions) -> list[dict]:
    """What a ¼-size latent can reach at best (scoring only: made from the truth): bicubic
    upsampling of the 4×-downsampled truth (the lowres latent's ceiling) and the prior on it
    (what ``post`` and ``decode`` could reach with a perfect latent)."""
    small = F.interpolate(truth, scale_factor=0.25, mode="area")
    bicubic = F.interpolate(small, scale_factor=4, mode="bicubic").clamp(0, 1)
    return [
        {"variant": "ref: bicubic(truth/4)", "scores": score(bicubic, truth), "seconds": 0.0},
        {
            "variant": "ref: prior(truth/4)",
            "scores": score(RealESRGANPrior().refine(truth, prior, 4), truth),
            "seconds": 0.0,
        },
    ]


def more_of_the_same(
    attack: CuriousClient, target: AttackTarget, raw: torch.Tensor, iterations: int, lr: float
) -> torch.Tensor:
    """The raw images matched for ``iterations`` more steps at full resolution (s = 1, the
    attack's last stage), at the decoder stage's lr: the no-prior run at equal budget."""
    best = attack.run_trials(
        target,
        attack.loss(target),
        resolve_labels(attack.config.labels, target),
        PARAMETRIZATIONS.get("lowres"),
        ParametrizationSettings(scale=1),
        replace(attack.loop_settings(), iterations=iterations, lr=lr),
        1,
        None,
        start=started_from(raw, 1),
        generator=trial_generator(),
    )
    return best.parametrization.images().detach().clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data", nargs="+", default=list(DATASETS))
    parser.add_argument("--iterations", type=int, default=100, help="Per coarse-to-fine stage.")
    parser.add_argument("--decoder-iterations", type=int, default=30)
    parser.add_argument("--decoder-lr", type=float, default=0.01)
    parser.add_argument("--labels", choices=("given", "recovered"), default="given")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"load average {os.getloadavg()}; {args.iterations} iterations per stage, decoder stage "
        f"{args.decoder_iterations} at lr {args.decoder_lr}; labels {args.labels}; torch threads 1"
    )
    print("| data | seed | prior | PSNR (dB) | SSIM | LPIPS | s |\n|---|---|---|---|---|---|---|")
    table: dict[tuple[str, str], list[tuple[float, float, float | None]]] = {}
    for seed in args.seeds:
        for data in args.data:
            config = config_for(data, seed, args.labels, args.iterations)
            for row in run(config, args.decoder_iterations, args.decoder_lr):
                psnr, ssim, lpips = row["scores"]
                table.setdefault((data, row["variant"]), []).append(row["scores"])
                print(
                    f"| {data} | {seed} | {row['variant']} | {psnr:.2f} | {ssim:.3f} "
                    f"| {fmt(lpips)} | {row['seconds']:.0f} |",
                    flush=True,
                )
    print(
        "\n| data | prior | seeds | mean PSNR (dB) | mean SSIM | mean LPIPS |\n"
        "|---|---|---|---|---|---|"
    )
    for (data, variant), scores in table.items():
        psnr = statistics.mean(s[0] for s in scores)
        ssim = statistics.mean(s[1] for s in scores)
        lpips_values = [s[2] for s in scores if s[2] is not None]
        lpips = statistics.mean(lpips_values) if len(lpips_values) == len(scores) else None
        print(f"| {data} | {variant} | {len(scores)} | {psnr:.2f} | {ssim:.3f} | {fmt(lpips)} |")


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
