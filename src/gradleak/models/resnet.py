"""ResNet-18 in two layouts (He et al. 2016).

``resnet18`` is the CIFAR variant (as used by Inverting Gradients and breaching): a 3x3 stride-1
stem without max-pooling. ``resnet18_imagenet`` is the ImageNet (torchvision) layout that
FedLeak's authors attack: a 7x7 stride-2 stem and a 3x3 stride-2 max-pool, so a 128x128 image
reaches the last stage at 4x4. Both have four stages of two BasicBlocks, global average pooling
and a linear head. The base width is ``4 * spec.width`` so that the default width 16 gives the
standard 64-128-256-512 network, while ``model.width`` still scales it.
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.errors import ConfigError
from gradleak.models.base import MODELS, ModelSpec
from gradleak.models.layers import activation, norm2d

BLOCKS_PER_STAGE = (2, 2, 2, 2)
BASE_WIDTH_PER_WIDTH = 4
IMAGENET_MIN_SIZE = 64
"""The smallest image the ImageNet layout takes: 32x down-sampling leaves it 2x2 at the end."""


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, spec: ModelSpec, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = norm2d(spec.norm, out_channels)
        self.act1 = activation(spec.activation)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.norm2 = norm2d(spec.norm, out_channels)
        self.act2 = activation(spec.activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                norm2d(spec.norm, out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


def _stages(spec: ModelSpec, stem: list[nn.Module], base: int) -> nn.Module:
    """The stem, then four stages of BasicBlocks doubling the width, pooling and the head."""
    layers = list(stem)
    channels = base
    for stage, blocks in enumerate(BLOCKS_PER_STAGE):
        out_channels = base * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(spec, channels, out_channels, stride))
            channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, spec.num_classes)]
    return nn.Sequential(*layers)


@MODELS.register("resnet18")
def resnet18(spec: ModelSpec) -> nn.Module:
    """The CIFAR variant: 3x3 stride-1 stem, no max-pool (full resolution into stage one)."""
    base = BASE_WIDTH_PER_WIDTH * spec.width
    stem: list[nn.Module] = [
        nn.Conv2d(spec.channels, base, 3, 1, padding=1, bias=False),
        norm2d(spec.norm, base),
        activation(spec.activation),
    ]
    return _stages(spec, stem, base)


@MODELS.register("resnet18_imagenet")
def resnet18_imagenet(spec: ModelSpec) -> nn.Module:
    """The ImageNet (torchvision) layout FedLeak's headline case attacks: 7x7 stride-2 stem and
    3x3 stride-2 max-pool (a 4x smaller map into stage one); with 1000 classes and BatchNorm it
    has torchvision's 11,689,512 parameters. The activation is ``model.activation`` (sigmoid in
    FedLeak's case). It refuses images under 64 px: the network down-samples 32x, and at 1x1
    in the last stage train-mode BatchNorm has one value per channel at batch 1."""
    if spec.image_size < IMAGENET_MIN_SIZE:
        raise ConfigError(
            f"model resnet18_imagenet needs data.image_size >= {IMAGENET_MIN_SIZE} "
            f"(got {spec.image_size}); use model.name=resnet18 (the CIFAR variant) for small images"
        )
    base = BASE_WIDTH_PER_WIDTH * spec.width
    stem: list[nn.Module] = [
        nn.Conv2d(spec.channels, base, 7, 2, padding=3, bias=False),
        norm2d(spec.norm, base),
        activation(spec.activation),
        nn.MaxPool2d(3, 2, padding=1),
    ]
    return _stages(spec, stem, base)
