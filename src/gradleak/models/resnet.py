"""CIFAR-style ResNet-18 (He et al. 2016, as used by Inverting Gradients and breaching).

A 3x3 stride-1 stem without max-pooling, four stages of two BasicBlocks, global average pooling
and a linear head. The base width is ``4 * spec.width`` so that the default width 16 gives the
standard 64-128-256-512 network, while ``model.width`` still scales it.
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.models.base import MODELS, ModelSpec
from gradleak.models.layers import activation, norm2d

BLOCKS_PER_STAGE = (2, 2, 2, 2)
BASE_WIDTH_PER_WIDTH = 4


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


@MODELS.register("resnet18")
def resnet18(spec: ModelSpec) -> nn.Module:
    base = BASE_WIDTH_PER_WIDTH * spec.width
    layers: list[nn.Module] = [
        nn.Conv2d(spec.channels, base, 3, 1, padding=1, bias=False),
        norm2d(spec.norm, base),
        activation(spec.activation),
    ]
    channels = base
    for stage, blocks in enumerate(BLOCKS_PER_STAGE):
        out_channels = base * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(spec, channels, out_channels, stride))
            channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, spec.num_classes)]
    return nn.Sequential(*layers)
