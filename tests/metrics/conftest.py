"""Real photographs (scikit-image's bundled samples) as test images in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch


def crops(image: np.ndarray, size: int, count: int) -> torch.Tensor:
    """``count`` distinct (C, size, size) crops along the image's diagonal, as one batch."""
    if image.ndim == 2:
        image = image[..., None]
    step = (min(image.shape[:2]) - size) // max(count - 1, 1)
    tiles = [image[i * step : i * step + size, i * step : i * step + size] for i in range(count)]
    batch = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).double()
    return batch / 255.0


@pytest.fixture(scope="session")
def rgb_images() -> torch.Tensor:
    """Six 48x48 RGB crops from three photographs."""
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    return torch.cat([crops(img[::3, ::3], 48, 2) for img in sources])


@pytest.fixture(scope="session")
def gray_images() -> torch.Tensor:
    """Four 64x64 grayscale crops of the cameraman and the moon."""
    return torch.cat(
        [crops(img[::2, ::2], 64, 2) for img in (skimage.data.camera(), skimage.data.moon())]
    )
