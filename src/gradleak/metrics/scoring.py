"""Scoring a reconstruction against the ground truth, kept apart from the attacks.

Reconstructions are paired with true images by Hungarian matching on PSNR (one-to-one), then
PSNR, SSIM and (when weights are present) LPIPS are reported per matched pair and as means.
Labels are scored as multisets. The many-to-one best-match PSNR is reported as a labelled extra.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from gradleak.metrics.image import psnr, ssim
from gradleak.metrics.labels import label_accuracy
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.matching import best_match, hungarian_match

MATCHING_METRIC = "psnr"


@dataclass(frozen=True)
class ScoreReport:
    """Scores of one reconstruction; ``per_image`` is ordered by true-image ``index``."""

    psnr_mean: float
    ssim_mean: float
    lpips_mean: float | None
    label_accuracy: float | None
    best_match_psnr_mean: float
    num_scored_images: int
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_reconstruction(
    recon: torch.Tensor,
    truth: torch.Tensor,
    recon_labels: torch.Tensor | None = None,
    true_labels: torch.Tensor | None = None,
    lpips: LPIPS | None = None,
) -> ScoreReport:
    """Score reconstructed images (n, C, H, W) against true ones (m, C, H, W), both in [0, 1].

    ``per_image`` entries hold the true image's ``index``, the reconstruction it is
    ``matched_to``, and its ``psnr``, ``ssim`` (and ``lpips`` when scored). Label accuracy is
    None unless both label sets are given.
    """
    if recon.shape[1:] != truth.shape[1:]:
        raise ValueError(
            f"reconstruction {tuple(recon.shape)} and truth {tuple(truth.shape)} differ"
        )
    with torch.no_grad():
        truth = truth.detach().clamp(0, 1)
        recon = recon.detach().to(truth.device, truth.dtype).clamp(0, 1)
        recon_idx, truth_idx = hungarian_match(recon, truth, MATCHING_METRIC)
        matched, targets = recon[recon_idx], truth[truth_idx]
        columns = {"psnr": psnr(matched, targets), "ssim": ssim(matched, targets)}
        if lpips is not None:
            lpips = lpips.to(truth.device)
            columns["lpips"] = lpips(matched, targets)
        best = recon[best_match(recon, truth, MATCHING_METRIC)]
        best_psnr = psnr(best, truth).mean().item()
    per_image = [
        {
            "index": int(t),
            "matched_to": int(r),
            **{name: float(values[i]) for name, values in columns.items()},
        }
        for i, (r, t) in enumerate(zip(recon_idx.tolist(), truth_idx.tolist(), strict=True))
    ]
    labels = None
    if recon_labels is not None and true_labels is not None:
        labels = label_accuracy(recon_labels, true_labels)
    return ScoreReport(
        psnr_mean=columns["psnr"].mean().item(),
        ssim_mean=columns["ssim"].mean().item(),
        lpips_mean=columns["lpips"].mean().item() if "lpips" in columns else None,
        label_accuracy=labels,
        best_match_psnr_mean=best_psnr,
        num_scored_images=len(per_image),
        per_image=per_image,
    )
