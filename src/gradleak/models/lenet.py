"""The LeNets of the gradient-inversion literature.

``lenet_dlg`` is the network DLG (Zhu et al. 2019, mit-han-lab/dlg) attacks: three stride-2/2/1
5x5 convolutions of 12 channels and a single linear layer, with weights drawn uniformly from
[-0.5, 0.5] as in that code (the wide initialisation is part of why DLG works on it).
``lenet5`` is the classic conv6-pool-conv16-pool-fc120-fc84-fc network (max pooling).
``lenet_rog`` is the LeNet-5 of ROG that the curious-client paper attacks (see its builder).
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.models.base import MODELS, ModelSpec
from gradleak.models.layers import activation, conv_output_size

DLG_INIT_RANGE = 0.5


@MODELS.register("lenet_dlg")
def lenet_dlg(spec: ModelSpec) -> nn.Module:
    """DLG's LeNet; ``spec.activation`` should be "sigmoid" to match the paper."""
    side = spec.image_size
    layers: list[nn.Module] = []
    in_channels = spec.channels
    for stride in (2, 2, 1):
        layers += [
            nn.Conv2d(in_channels, 12, kernel_size=5, padding=2, stride=stride),
            activation(spec.activation),
        ]
        in_channels = 12
        side = conv_output_size(side, 5, stride, 2)
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(12 * side * side, spec.num_classes))
    with torch.no_grad():
        for param in model.parameters():
            param.uniform_(-DLG_INIT_RANGE, DLG_INIT_RANGE)
    return model


@MODELS.register("lenet5")
def lenet5(spec: ModelSpec) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with max pooling; any input of at least 16 pixels."""
    side = conv_output_size(conv_output_size(spec.image_size, 5) // 2, 5) // 2
    return nn.Sequential(
        nn.Conv2d(spec.channels, 6, kernel_size=5),
        activation(spec.activation),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        activation(spec.activation),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120),
        activation(spec.activation),
        nn.Linear(120, 84),
        activation(spec.activation),
        nn.Linear(84, spec.num_classes),
    )


@MODELS.register("lenet_rog")
def lenet_rog(spec: ModelSpec) -> nn.Module:
    """The LeNet-5 of ROG (Yue et al. 2023, KAI-YUE/rog) that the curious-client paper attacks.

    Two 5x5 convolutions of 32 and 64 channels, each followed by 2x2 max pooling, then a
    512-unit linear layer and the classifier, both without bias; ReLU by default. Its wide
    first linear layer (``(side/4)² · 64 → 512``) makes the update hold far more equations per
    image than DLG's LeNet, which is what lets a batch of a dozen images be inverted.
    """
    side = spec.image_size // 4
    return nn.Sequential(
        nn.Conv2d(spec.channels, 32, kernel_size=5, padding=2),
        activation(spec.activation),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2),
        activation(spec.activation),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 512, bias=False),
        activation(spec.activation),
        nn.Linear(512, spec.num_classes, bias=False),
    )
