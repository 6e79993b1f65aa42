"""Showing a prior's effect honestly: the same scores for the raw inversion beside the refined.

An attack that refines its result with a prior keeps the raw images in
``Reconstruction.extra["raw_images"]``; the runner scores them too, so that ``metrics.json``
says whether the prior helped (it can hurt: a prior trained briefly invents detail).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from gradleak.attacks.base import Reconstruction
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.scoring import score_reconstruction


def without_prior_metrics(
    recon: Reconstruction, truth: Tensor, lpips: LPIPS | None
) -> dict[str, Any] | None:
    """``{"without_prior": {...}, "prior": settings}`` for a refined reconstruction, else None."""
    raw = recon.extra.get("raw_images")
    if raw is None:
        return None
    report = score_reconstruction(raw.detach().cpu(), truth.cpu(), lpips=lpips)
    return {
        "without_prior": {
            "psnr_mean": report.psnr_mean,
            "ssim_mean": report.ssim_mean,
            "lpips_mean": report.lpips_mean,
            "per_image": report.per_image,
        },
        "prior": recon.extra.get("prior"),
    }
