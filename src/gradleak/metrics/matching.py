"""Pairing reconstructions with the true images they came from.

An attack returns a batch in arbitrary order, so scores need a pairing. The reported one is a
one-to-one Hungarian assignment (every reconstruction counts at most once); the many-to-one
"best match" that some papers report flatters attacks that produce one good image many times,
and is kept only as a labelled extra.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from scipy.optimize import linear_sum_assignment

from gradleak.metrics.image import psnr, ssim
from gradleak.registry import Registry

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SIMILARITIES: Registry[Similarity] = Registry("matching metric")
"""Per-pair similarity (higher is better) of two equally long batches, shape (B,)."""
SIMILARITIES.register("psnr")(psnr)
SIMILARITIES.register("ssim")(ssim)


@SIMILARITIES.register("mse")
def _negative_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(x - y).pow(2).flatten(1).mean(1)


def similarity_matrix(
    recon: torch.Tensor, truth: torch.Tensor, metric: str = "psnr"
) -> torch.Tensor:
    """Similarity of every reconstruction (rows) to every true image (columns), shape (n, m)."""
    similarity = SIMILARITIES.get(metric)
    n, m = recon.shape[0], truth.shape[0]
    rows = recon.repeat_interleave(m, dim=0)
    cols = truth.repeat(n, 1, 1, 1)
    return similarity(rows, cols).view(n, m)


def hungarian_match(
    recon: torch.Tensor, truth: torch.Tensor, metric: str = "psnr"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-one pairs maximising total similarity: ``recon[r[i]]`` goes with ``truth[t[i]]``.

    With unequal counts, ``min(n, m)`` pairs are made. Pairs come sorted by truth index.
    """
    with torch.no_grad():
        scores = similarity_matrix(recon, truth, metric)
    recon_idx, truth_idx = linear_sum_assignment(scores.cpu().double().numpy(), maximize=True)
    order = truth_idx.argsort()
    return torch.as_tensor(recon_idx[order]), torch.as_tensor(truth_idx[order])


def best_match(recon: torch.Tensor, truth: torch.Tensor, metric: str = "psnr") -> torch.Tensor:
    """Extra, many-to-one: for each true image, the index of its most similar reconstruction."""
    with torch.no_grad():
        return similarity_matrix(recon, truth, metric).argmax(0)
