"""Pairwise masks hide each upload and cancel in the sum."""

from __future__ import annotations

import torch

from gradleak.fl.secure_aggregation import mask_updates


def _updates(n: int = 8, d: int = 5000) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0)) + 0.5


def test_masks_cancel_in_the_sum() -> None:
    updates = _updates()
    masked = mask_updates(updates, seed=3)
    assert masked.dtype == torch.float64
    true_sum = updates.double().sum(dim=0)
    error = (masked.sum(dim=0) - true_sum).norm() / true_sum.norm()
    assert float(error) < 1e-6


def test_each_masked_upload_is_uncorrelated_with_its_update() -> None:
    updates = _updates()
    masked = mask_updates(updates, seed=3)
    for original, upload in zip(updates.double(), masked, strict=True):
        correlation = torch.corrcoef(torch.stack([original, upload]))[0, 1]
        assert abs(float(correlation)) < 0.05
        assert float((upload - original).norm()) > 100 * float(original.norm())


def test_masks_are_deterministic_per_seed() -> None:
    updates = _updates(4, 100)
    assert torch.equal(mask_updates(updates, seed=1), mask_updates(updates, seed=1))
    assert not torch.equal(mask_updates(updates, seed=1), mask_updates(updates, seed=2))
