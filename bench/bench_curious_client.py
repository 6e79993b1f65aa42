"""Figures of the curious-client attack (issue 5), printed as a Markdown table.

Rows: 4 clients × 4 CIFAR-10 images (32², the config's LeNet, FedAvg τ = 3) with given and recovered labels;
dilution with 8 and 16 clients; 1, 2 and 4 observed rounds (at ``--scaling-iterations``, with a
4 × 4 row at that budget to compare them with); and, when a prior is given or
trained here (``--prior-steps``), the same 4×4 reconstruction refined by it (sdedit and ddrm).
Each row reports matched PSNR/SSIM on the peers' images only, label accuracy, and wall time per
reconstruction. Run: ``python bench/bench_curious_client.py [--iterations N] [--prior DIR]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gradleak.attacks.curious_client import CuriousClient
from gradleak.config import DataConfig, ExperimentConfig, load_config
from gradleak.data import load_dataset
from gradleak.experiments.threats.peer import curious_peer
from gradleak.metrics.scoring import score_reconstruction
from gradleak.priors.diffusion import RefineSettings, refine
from gradleak.priors.training import PriorTrainSettings, train_ddpm

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "curious_client.yaml"


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...``: config overrides, e.g. the earlier configuration's
    ``model.name=lenet_dlg model.activation=sigmoid attack.options.objective=l2``."""
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="Config overrides, e.g. the earlier configuration: model.name=lenet_dlg "
        "model.activation=sigmoid attack.options.objective=l2.",
    )


def scenario_config(
    clients: int, rounds: int, labels: str, overrides: list[str] | None = None
) -> ExperimentConfig:
    return load_config(
        CONFIG,
        [
            f"federation.num_clients={clients}",
            f"data.max_images={clients * 4}",
            f"federation.rounds={rounds}",
            f"attack.labels={labels}",
            f"threat.knows_labels={labels == 'given'}",
            *(overrides or []),
        ],
    )


def run_row(config: ExperimentConfig, iterations: int) -> tuple[dict[str, object], torch.Tensor]:
    """One reconstruction: its scores and the raw images (for the prior rows)."""
    torch.manual_seed(config.seed)
    scenario = curious_peer(config, torch.device("cpu"))
    attack = CuriousClient(config.attack.model_copy(update={"iterations": iterations}))
    start = time.perf_counter()
    recon = attack.reconstruct(scenario.target)
    seconds = time.perf_counter() - start
    report = score_reconstruction(
        recon.images,
        scenario.truth.images,
        recon.labels if config.attack.labels == "recovered" else None,
        scenario.truth.labels,
        None,
    )
    row: dict[str, object] = {
        "images": scenario.truth.images.shape[0],
        "psnr": report.psnr_mean,
        "ssim": report.ssim_mean,
        "labels": report.label_accuracy,
        "seconds": seconds,
    }
    return row, recon.images


def train_prior(steps: int, output: Path) -> Path:
    """A small DDPM on 10,000 CIFAR-10 *train* images (the attack scores test images)."""
    data = load_dataset(
        DataConfig(name="cifar10", split="train", max_images=10000, shuffle=True), 0
    )
    settings = PriorTrainSettings(steps=steps, batch_size=32, checkpoint_every=steps)
    start = time.perf_counter()
    losses = train_ddpm(data.images, output, settings, torch.device("cpu"))
    tail = losses[-20:]
    print(
        f"prior: {steps} steps in {time.perf_counter() - start:.0f}s, final loss {sum(tail) / len(tail):.3f}"
    )
    return output


def fmt(value: object) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--prior", type=Path, default=None, help="A trained DDPM folder.")
    parser.add_argument("--prior-steps", type=int, default=0, help="Train a prior here first.")
    parser.add_argument("--quick", action="store_true", help="Only the 4×4 rows.")
    parser.add_argument(
        "--scaling-iterations",
        type=int,
        default=None,
        help="Iterations per stage for the dilution and rounds rows (default: --iterations).",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help="Only the rows whose name contains one of these strings (e.g. '1 peer').",
    )
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"load average {os.getloadavg()}; {args.iterations} iterations per stage "
        f"({args.scaling_iterations or args.iterations} for dilution/rounds rows); torch threads 1"
    )
    rows: list[tuple[str, dict[str, object]]] = []

    def scenario(clients: int, rounds: int, labels: str) -> ExperimentConfig:
        return scenario_config(clients, rounds, labels, args.set)

    def add(
        name: str, config: ExperimentConfig, iterations: int | None = None
    ) -> torch.Tensor | None:
        if args.rows and not any(part in name for part in args.rows):
            return None
        row, images = run_row(config, iterations or args.iterations)
        rows.append((name, row))
        print(name, {k: fmt(v) for k, v in row.items()}, flush=True)
        return images

    base = scenario(4, 1, "given")
    raw = add("4 clients × 4, given labels", base)
    add("4 clients × 4, recovered labels", scenario(4, 1, "recovered"))
    add("2 clients × 4 (1 peer), given labels", scenario(2, 1, "given"))
    if not args.quick:
        it = args.scaling_iterations
        if it is not None and it != args.iterations:
            # The dilution and rounds rows' own baseline: 4 × 4, one round, at their budget.
            add(f"4 clients × 4, given labels, {it} iterations", base, it)
        add("8 clients × 4, given labels", scenario(8, 1, "given"), it)
        add("16 clients × 4, given labels", scenario(16, 1, "given"), it)
        add("4 clients × 4, 2 rounds observed", scenario(4, 2, "given"), it)
        add("4 clients × 4, 4 rounds observed", scenario(4, 4, "given"), it)
    prior = args.prior
    if prior is None and args.prior_steps:
        prior = train_prior(args.prior_steps, Path(tempfile.mkdtemp()) / "ddpm")
    if prior is not None and raw is not None:
        truth = curious_peer(base, torch.device("cpu")).truth
        for method, strength in (("sdedit", 0.2), ("ddrm", 0.4)):
            start = time.perf_counter()
            refined = refine(prior, method, raw, RefineSettings(strength=strength, steps=50))
            report = score_reconstruction(refined, truth.images, None, truth.labels, None)
            prior_row: dict[str, object] = {
                "images": len(refined),
                "psnr": report.psnr_mean,
                "ssim": report.ssim_mean,
                "labels": None,
                "seconds": time.perf_counter() - start,
            }
            rows.append((f"4 × 4 given + prior {method} (t={strength})", prior_row))
            print(rows[-1][0], {k: fmt(v) for k, v in prior_row.items()}, flush=True)
    print("\n| setting | peers' images | PSNR (dB) | SSIM | label acc. | s / reconstruction |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        print(
            f"| {name} | {row['images']} | {fmt(row['psnr'])} | {fmt(row['ssim'])} | "
            f"{fmt(row['labels'])} | {fmt(row['seconds'])} |"
        )


if __name__ == "__main__":
    main()
