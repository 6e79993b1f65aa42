"""Scoring a finished attack and drawing it, one way per modality.

The runner hands the attack's :class:`~gradleak.attacks.base.Reconstruction` and the scenario's
ground truth to the outcome registered for the target's modality. An outcome returns the
scores ``metrics.json`` holds and the pictures the run folder holds: for images PSNR, SSIM,
LPIPS on Hungarian-matched pairs and ``reconstruction.png``; for text ROUGE-1/2/L, token
accuracy and the exact-sentence rate on pairs matched on ROUGE-L and ``reconstruction.html``.
Ground truth enters here and in nothing the attack can reach.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradleak.attacks.base import Reconstruction
from gradleak.config import ExperimentConfig
from gradleak.experiments.pictures import save_reconstruction_grid
from gradleak.experiments.prior_report import without_prior_metrics
from gradleak.experiments.threats import Scenario
from gradleak.metrics.labels import label_accuracy
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.scoring import score_reconstruction
from gradleak.registry import Registry

PictureWriter = Callable[[Path], None]
"""Writes one picture to the (temporary) path it is given."""


@dataclass
class Outcome:
    """What a run folder holds beyond its config: the scores and the pictures, by file name."""

    scores: dict[str, Any]
    pictures: dict[str, PictureWriter] = field(default_factory=dict)


OutcomeBuilder = Callable[[ExperimentConfig, Scenario, Reconstruction], Outcome]

OUTCOMES: Registry[OutcomeBuilder] = Registry("modality")


@OUTCOMES.register("image")
def image_outcome(config: ExperimentConfig, scenario: Scenario, recon: Reconstruction) -> Outcome:
    """PSNR/SSIM/LPIPS on Hungarian pairs, the raw-vs-prior comparison, ``reconstruction.png``."""
    lpips = (
        LPIPS.load(config.metrics.lpips_backbone, config.metrics.lpips_weights)
        if config.metrics.lpips
        else None
    )
    truth = scenario.truth
    images = recon.images.detach().cpu()
    report = score_reconstruction(
        images,
        truth.images.cpu(),
        None if recon.labels is None else recon.labels.cpu(),
        truth.labels.cpu(),
        lpips,
    )
    scores = report.to_dict()
    scores.update(without_prior_metrics(recon, truth.images, lpips) or {})
    pairs = report.per_image
    title = f"{config.attack.name} vs {config.threat.attacker}: {report.psnr_mean:.2f} dB mean PSNR"

    def picture(path: Path) -> None:
        save_reconstruction_grid(
            truth.images.cpu()[[p["index"] for p in pairs]],
            images[[p["matched_to"] for p in pairs]],
            [p["psnr"] for p in pairs],
            path,
            title,
        )

    return Outcome(scores, {"reconstruction.png": picture})


@OUTCOMES.register("text")
def text_outcome(config: ExperimentConfig, scenario: Scenario, recon: Reconstruction) -> Outcome:
    """ROUGE and token scores on pairs matched on ROUGE-L, decoded with the model's public
    tokeniser, and ``reconstruction.html`` (true and reconstructed sentences side by side)."""
    from gradleak.data.text_tokenizer import PAD_ID
    from gradleak.experiments.text_pictures import save_text_reconstruction
    from gradleak.metrics.text import score_text_pairs

    tokenizer = scenario.target.tokenizer
    if tokenizer is None:
        raise ValueError("a text outcome needs the target's tokeniser")
    truth_ids = scenario.truth.images.cpu()
    recon_ids = recon.images.detach().cpu().long()
    result = score_text_pairs(
        tokenizer.decode(truth_ids), tokenizer.decode(recon_ids), truth_ids, recon_ids, PAD_ID
    )
    labels = None
    if recon.labels is not None:
        labels = label_accuracy(recon.labels.cpu(), scenario.truth.labels.cpu())
    per_sentence = [
        {"index": i, "matched_to": j, **pair}
        for i, (j, pair) in enumerate(zip(result.order, result.pairs, strict=True))
    ]
    scores: dict[str, Any] = {
        **result.batch,
        "label_accuracy": labels,
        "num_scored_sentences": len(per_sentence),
        "per_sentence": per_sentence,
    }
    title = f"{config.attack.name} vs {config.threat.attacker}"

    def picture(path: Path) -> None:
        save_text_reconstruction(
            tokenizer.tokens(truth_ids),
            tokenizer.tokens(recon_ids[result.order]),
            result.pairs,
            title,
            path,
            result.batch,
        )

    return Outcome(scores, {"reconstruction.html": picture})
