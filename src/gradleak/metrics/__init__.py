"""Scoring what leaked: PSNR, SSIM, LPIPS, matching of reconstructions to true images, labels.

Conventions (the README's "Scoring conventions"): images in [0, 1]; SSIM as scikit-image with a Gaussian
window of sigma 1.5; LPIPS with its backbone named; one-to-one Hungarian matching for batches.
"""

from gradleak.metrics.image import psnr, ssim
from gradleak.metrics.labels import label_accuracy, positional_label_accuracy
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.matching import best_match, hungarian_match, similarity_matrix
from gradleak.metrics.scoring import ScoreReport, score_reconstruction

__all__ = [
    "LPIPS",
    "ScoreReport",
    "best_match",
    "hungarian_match",
    "label_accuracy",
    "positional_label_accuracy",
    "psnr",
    "score_reconstruction",
    "similarity_matrix",
    "ssim",
]
