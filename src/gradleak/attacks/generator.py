"""FedLeak's untrained image generator G_θ(z) (its implicit image prior).

A transposed convolution maps the code to 4×4 maps; blocks of two spectrally normalised 3×3
convolutions with BatchNorm and LeakyReLU(0.1) follow, with nearest ×2 upsampling between them,
up to the image size; a 1×1 convolution gives the channels and a sigmoid puts them in [0, 1].
Nothing is pretrained: the architecture alone favours smooth, natural-looking images.

How many channels each block has is its *layout*, a name in :data:`LAYOUTS`:

- ``authors`` (the default): the FedLeak authors' generator. ``width`` channels in the blocks at
  4, 8, 16 and 32 px, then half of it at 64 px, a quarter at 128 px and a quarter again at
  256 px (and above, which their code does not build). With width 256 that is 5,250,563
  parameters at 32², 5,693,315 at 64² and 5,804,099 at 128².
- ``wide``: ``width`` channels at every resolution, gradleak's earlier generator. Identical to
  ``authors`` up to 32², larger above (6,431,747 parameters at 64², 7,612,931 at 128²) and
  1.9× / 4.9× the convolution cost per image at 64² / 128² (a whole FedLeak iteration, batch 4,
  ConvNet-8 sigmoid, 1 CPU thread, shared machine: 9.2–9.7 against 4.6–5.8 s at 64², 36.4–37.5
  against 11.4–11.5 s at 128²; ``bench/bench_fedleak_layout.py``). It was **not** measured to reconstruct better than the authors' layout; it
  is kept only to reproduce earlier runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gradleak.errors import ConfigError
from gradleak.registry import Registry

Layout = Callable[[int, int], int]
"""(resolution in px of a block, base width) -> that block's output channels."""

LAYOUTS: Registry[Layout] = Registry("generator layout")


@LAYOUTS.register("authors")
def authors_layout(resolution: int, width: int) -> int:
    """Full width up to 32 px, halved at 64 px, quartered from 128 px on (FedLeak's code)."""
    return max(1, width // min(4, max(1, resolution // 32)))


@LAYOUTS.register("wide")
def wide_layout(resolution: int, width: int) -> int:
    """The same width at every resolution."""
    return width


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers += [
            spectral_norm(nn.Conv2d(channels, out_channels, 3, padding=1)),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1),
        ]
    return nn.Sequential(*layers)


class ImageGenerator(nn.Module):
    """Maps codes (B, latent_dim) to images (B, channels, size, size) in [0, 1]."""

    def __init__(
        self,
        size: int,
        channels: int,
        latent_dim: int = 128,
        width: int = 256,
        layout: str = "authors",
    ) -> None:
        super().__init__()
        if size < 4 or 2 ** round(math.log2(size)) != size:
            raise ConfigError(
                f"the generator parametrization needs a power-of-two image size >= 4, got {size}"
            )
        widths = LAYOUTS.get(layout)
        self.latent_dim = latent_dim
        self.stem = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, width, 4), nn.BatchNorm2d(width), nn.LeakyReLU(0.1)
        )
        self.first = _block(width, widths(4, width))
        stages: list[nn.Module] = []
        current = widths(4, width)
        for step in range(int(math.log2(size // 4))):
            out = widths(8 * 2**step, width)
            stages.append(_block(current, out))
            current = out
        self.stages = nn.ModuleList(stages)
        self.to_image = nn.Conv2d(current, channels, 1)

    def forward(self, code: Tensor) -> Tensor:
        out = self.first(self.stem(code.view(-1, self.latent_dim, 1, 1)))
        for stage in self.stages:
            out = stage(F.interpolate(out, scale_factor=2, mode="nearest"))
        return self.to_image(out).sigmoid()
