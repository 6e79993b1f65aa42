"""Per-image quality metrics on batches in [0, 1]: PSNR and SSIM.

Both follow scikit-image's definitions (data range 1) so that our numbers can be checked against
it and compared with papers that use it; both are plain torch, batched and differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PSNR_CAP_DB = 100.0
"""PSNR of identical images: the MSE is floored at 1e-10 so means and JSON stay finite."""

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"expected two (B, C, H, W) batches of one shape, got {x.shape}, {y.shape}"
        )


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, shape (B,), capped at ``PSNR_CAP_DB``."""
    _check_pair(x, y)
    mse = (x - y).pow(2).flatten(1).mean(1)
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return -10.0 * torch.log10(mse.clamp_min(floor))


def _gaussian_kernel(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-d Gaussian: radius ``int(truncate * sigma + 0.5)``, normalised."""
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return kernel / kernel.sum()


def _blur_valid(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter keeping only pixels whose window lies inside the image.

    scikit-image filters with reflected borders and then crops ``(win_size - 1) // 2`` pixels
    from every side before averaging; a "valid" convolution yields exactly the kept pixels.
    """
    channels = images.shape[1]
    size = kernel.numel()
    rows = kernel.view(1, 1, size, 1).expand(channels, 1, size, 1)
    cols = kernel.view(1, 1, 1, size).expand(channels, 1, 1, size)
    return F.conv2d(F.conv2d(images, rows, groups=channels), cols, groups=channels)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image, shape (B,), averaged over channels.

    Matches ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``; images need at least 11 pixels per side.
    """
    _check_pair(x, y)
    kernel = _gaussian_kernel(x.dtype, x.device)
    if min(x.shape[-2:]) < kernel.numel():
        raise ValueError(f"SSIM needs images of at least {kernel.numel()} pixels per side")
    mu_x, mu_y = _blur_valid(x, kernel), _blur_valid(y, kernel)
    var_x = _blur_valid(x * x, kernel) - mu_x**2
    var_y = _blur_valid(y * y, kernel) - mu_y**2
    cov = _blur_valid(x * y, kernel) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).flatten(1).mean(1)
