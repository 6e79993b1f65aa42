"""PSNR and SSIM against scikit-image on real photographs and their degraded versions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gradleak.metrics import psnr, ssim
from gradleak.metrics.image import PSNR_CAP_DB


def degraded(images: torch.Tensor) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=gen, dtype=images.dtype)
    kernel = torch.full((images.shape[1], 1, 3, 3), 1 / 9, dtype=images.dtype)
    blurred = F.conv2d(
        F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=images.shape[1]
    )
    return {
        "noise_low": (images + 0.03 * noise).clamp(0, 1),
        "noise_high": (images + 0.3 * noise).clamp(0, 1),
        "blur": blurred,
        "dark": images * 0.6,
        "shuffled": images.roll(1, dims=0),
    }


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        structural_similarity(
            a.permute(1, 2, 0).numpy(),
            b.permute(1, 2, 0).numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=2,
        )
    )


@pytest.mark.parametrize("kind", ["rgb_images", "gray_images"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_matches_skimage(
    kind: str, dtype: torch.dtype, request: pytest.FixtureRequest
) -> None:
    truth = request.getfixturevalue(kind)
    for name, other in degraded(truth).items():
        ours = ssim(other.to(dtype), truth.to(dtype))
        reference = [skimage_ssim(o, t) for o, t in zip(other, truth, strict=True)]
        np.testing.assert_allclose(ours.double().numpy(), reference, atol=1e-3, err_msg=name)


def test_ssim_of_identical_images_is_one(rgb_images: torch.Tensor) -> None:
    torch.testing.assert_close(ssim(rgb_images, rgb_images), torch.ones(len(rgb_images)).double())


def test_ssim_is_differentiable(gray_images: torch.Tensor) -> None:
    x = gray_images.clone().requires_grad_(True)
    ssim(x, gray_images.flip(-1)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_ssim_rejects_tiny_images() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("kind", ["rgb_images", "gray_images"])
def test_psnr_matches_skimage(kind: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(kind)
    for name, other in degraded(truth).items():
        reference = [
            peak_signal_noise_ratio(t.numpy(), o.numpy(), data_range=1)
            for o, t in zip(other, truth, strict=True)
        ]
        np.testing.assert_allclose(psnr(other, truth).numpy(), reference, rtol=1e-6, err_msg=name)


def test_psnr_of_identical_images_is_capped(rgb_images: torch.Tensor) -> None:
    values = psnr(rgb_images, rgb_images)
    assert torch.isfinite(values).all()
    torch.testing.assert_close(values, torch.full_like(values, PSNR_CAP_DB))


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16))
