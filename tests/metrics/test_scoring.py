"""score_reconstruction: matching, per-image rows, extras and JSON-ready output."""

from __future__ import annotations

import json

import pytest
import torch

from gradleak.metrics import psnr, score_reconstruction


def test_permuted_reconstruction_scores_perfectly(rgb_images: torch.Tensor) -> None:
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    report = score_reconstruction(rgb_images[perm], rgb_images)
    assert report.num_scored_images == 6
    assert report.ssim_mean == pytest.approx(1.0)
    assert report.lpips_mean is None and report.label_accuracy is None
    assert [row["index"] for row in report.per_image] == list(range(6))
    assert [perm[row["matched_to"]].item() for row in report.per_image] == list(range(6))


def test_one_to_one_scores_and_best_match_extra(gray_images: torch.Tensor) -> None:
    truth = gray_images[:3]
    gen = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.randn((3, 1, 64, 64), generator=gen, dtype=truth.dtype)
    recon = (truth[[0, 0, 1]] + noise).clamp(0, 1)
    report = score_reconstruction(recon, truth, torch.tensor([1, 1, 2]), torch.tensor([2, 1, 3]))
    assert report.num_scored_images == 3
    assert sorted(row["matched_to"] for row in report.per_image) == [0, 1, 2]
    assert report.per_image[2]["psnr"] < 20 < report.per_image[0]["psnr"]
    assert report.best_match_psnr_mean > report.psnr_mean
    assert report.label_accuracy == pytest.approx(2 / 3)
    assert set(report.per_image[0]) == {"index", "matched_to", "psnr", "ssim"}
    json.dumps(report.to_dict(), allow_nan=False)


def test_inputs_are_clamped(gray_images: torch.Tensor) -> None:
    report = score_reconstruction(gray_images[:1] + 5.0, gray_images[:1])
    expected = psnr(torch.ones_like(gray_images[:1]), gray_images[:1]).item()
    assert report.psnr_mean == pytest.approx(expected)


def test_mismatched_image_shapes_are_rejected(gray_images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="differ"):
        score_reconstruction(gray_images[:, :, :32, :32], gray_images)
