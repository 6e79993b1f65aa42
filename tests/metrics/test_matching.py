"""Pairing reconstructions with true images, and label accuracy."""

from __future__ import annotations

import pytest
import torch

from gradleak.errors import UnknownNameError
from gradleak.metrics import (
    best_match,
    hungarian_match,
    label_accuracy,
    positional_label_accuracy,
    psnr,
)


def noisy(images: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (images + level * torch.randn(images.shape, generator=gen, dtype=images.dtype)).clamp(
        0, 1
    )


@pytest.mark.parametrize("metric", ["psnr", "ssim", "mse"])
def test_hungarian_recovers_a_permutation(rgb_images: torch.Tensor, metric: str) -> None:
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    recon = noisy(rgb_images[perm], 0.1)
    recon_idx, truth_idx = hungarian_match(recon, rgb_images, metric)
    assert truth_idx.tolist() == list(range(len(rgb_images)))
    assert perm[recon_idx].tolist() == truth_idx.tolist()


def test_hungarian_beats_or_equals_positional(rgb_images: torch.Tensor) -> None:
    recon = noisy(rgb_images.roll(2, dims=0), 0.05)
    positional = psnr(recon, rgb_images).mean()
    recon_idx, truth_idx = hungarian_match(recon, rgb_images)
    matched = psnr(recon[recon_idx], rgb_images[truth_idx]).mean()
    assert matched >= positional
    assert matched > positional + 5


def test_unequal_counts_score_the_smaller_number(gray_images: torch.Tensor) -> None:
    recon_idx, truth_idx = hungarian_match(gray_images[[2, 0]], gray_images)
    assert recon_idx.tolist() == [1, 0] and truth_idx.tolist() == [0, 2]
    recon_idx, truth_idx = hungarian_match(noisy(gray_images, 0.05), gray_images[:2])
    assert recon_idx.tolist() == [0, 1] and truth_idx.tolist() == [0, 1]


def test_best_match_is_many_to_one(gray_images: torch.Tensor) -> None:
    recon = torch.stack([gray_images[1], torch.rand_like(gray_images[0])])
    assert best_match(recon, gray_images).tolist()[1] == 0
    recon_idx, _ = hungarian_match(recon, gray_images)
    assert sorted(recon_idx.tolist()) == [0, 1]


def test_unknown_matching_metric() -> None:
    with pytest.raises(UnknownNameError, match="psnr"):
        hungarian_match(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), "lpips")


@pytest.mark.parametrize(
    ("pred", "true", "expected"),
    [
        ([1, 2, 3], [3, 2, 1], 1.0),
        ([1, 1, 2], [1, 2, 2], 2 / 3),
        ([0, 0, 0, 0], [0, 5, 0, 7], 0.5),
        ([4], [4, 4], 0.5),
        ([], [1, 2], 0.0),
        ([9, 9], [1, 2], 0.0),
    ],
)
def test_label_accuracy_counts_multisets(pred: list[int], true: list[int], expected: float) -> None:
    assert label_accuracy(
        torch.tensor(pred, dtype=torch.long), torch.tensor(true)
    ) == pytest.approx(expected)


def test_positional_label_accuracy() -> None:
    assert positional_label_accuracy(
        torch.tensor([1, 2, 3]), torch.tensor([3, 2, 1])
    ) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        positional_label_accuracy(torch.tensor([1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError):
        label_accuracy(torch.tensor([1]), torch.tensor([], dtype=torch.long))
