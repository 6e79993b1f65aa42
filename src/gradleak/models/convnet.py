"""The "ConvNet" of Geiping et al. (Inverting Gradients, NeurIPS 2020).

Eight 3x3 conv-norm-activation blocks of widths w, 2w, 2w, 4w, 4w, 4w | pool | 4w, 4w | pool,
then one linear layer; ``spec.width`` is w (ConvNet-16 by default, ConvNet-64 in the paper's
larger runs). The max-pools have kernel 3, so a 32-pixel input ends as 3x3 maps as in the
original; other sizes get a linear layer sized to match.
"""

from __future__ import annotations

from torch import nn

from gradleak.models.base import MODELS, ModelSpec
from gradleak.models.layers import activation, norm2d

POOL = 3
STAGES = ((1, 2, 2, 4, 4, 4), (4, 4))
"""Width multipliers of the conv blocks; every stage ends with a max-pool."""


def _block(spec: ModelSpec, in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        norm2d(spec.norm, out_channels),
        activation(spec.activation),
    ]


@MODELS.register("convnet")
def convnet(spec: ModelSpec) -> nn.Module:
    layers: list[nn.Module] = []
    channels, side = spec.channels, spec.image_size
    for stage in STAGES:
        for factor in stage:
            layers += _block(spec, channels, factor * spec.width)
            channels = factor * spec.width
        layers.append(nn.MaxPool2d(POOL))
        side //= POOL
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, spec.num_classes))
