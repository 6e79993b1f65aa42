"""FedLeak's untrained image generator G_θ(z) (its implicit image prior).

A transposed convolution maps the code to 4×4 maps; blocks of two spectrally normalised 3×3
convolutions with BatchNorm and LeakyReLU(0.1) follow, with nearest ×2 upsampling between them,
up to the image size; a 1×1 convolution gives the channels and a sigmoid puts them in [0, 1].
Nothing is pretrained: the architecture alone favours smooth, natural-looking images.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gradleak.errors import ConfigError


def _block(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            spectral_norm(nn.Conv2d(channels, channels, 3, padding=1)),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.1),
        ]
    return nn.Sequential(*layers)


class ImageGenerator(nn.Module):
    """Maps codes (B, latent_dim) to images (B, channels, size, size) in [0, 1]."""

    def __init__(self, size: int, channels: int, latent_dim: int = 128, width: int = 256) -> None:
        super().__init__()
        if size < 4 or 2 ** round(math.log2(size)) != size:
            raise ConfigError(
                f"the generator parametrization needs a power-of-two image size >= 4, got {size}"
            )
        self.latent_dim = latent_dim
        self.stem = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, width, 4), nn.BatchNorm2d(width), nn.LeakyReLU(0.1)
        )
        self.first = _block(width)
        self.stages = nn.ModuleList(_block(width) for _ in range(int(math.log2(size // 4))))
        self.to_image = nn.Conv2d(width, channels, 1)

    def forward(self, code: Tensor) -> Tensor:
        out = self.first(self.stem(code.view(-1, self.latent_dim, 1, 1)))
        for stage in self.stages:
            out = stage(F.interpolate(out, scale_factor=2, mode="nearest"))
        return self.to_image(out).sigmoid()
