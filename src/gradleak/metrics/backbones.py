"""Feature extractors for LPIPS, laid out exactly like torchvision's ``features`` modules.

torchvision is not a dependency, but its ImageNet checkpoints (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``) load into these by state-dict key, which is what LPIPS was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from gradleak.registry import Registry


@dataclass(frozen=True)
class Backbone:
    """A feature network, the ReLU outputs LPIPS compares, and torchvision's file for it."""

    build: Callable[[], nn.Sequential]
    taps: tuple[int, ...]
    channels: tuple[int, ...]
    checkpoint: str


BACKBONES: Registry[Backbone] = Registry("LPIPS backbone")


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Conv widths of VGG-16; every stage ends with a 2x2 max-pool."""


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for stage in VGG16_STAGES:
        for out_channels in stage:
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


BACKBONES.register("alex")(
    Backbone(
        build=_alexnet_features,
        taps=(1, 4, 7, 9, 11),
        channels=(64, 192, 384, 256, 256),
        checkpoint="alexnet-owt-7be5be79.pth",
    )
)
BACKBONES.register("vgg")(
    Backbone(
        build=_vgg16_features,
        taps=(3, 8, 15, 22, 29),
        channels=(64, 128, 256, 512, 512),
        checkpoint="vgg16-397923af.pth",
    )
)
