"""A fully connected network: the simplest model, where a single sample's input can be read
exactly off the first layer's gradient (a useful sanity check for attacks)."""

from __future__ import annotations

from torch import nn

from gradleak.models.base import MODELS, ModelSpec
from gradleak.models.layers import activation

HIDDEN_LAYERS = 2
HIDDEN_PER_WIDTH = 16


@MODELS.register("mlp")
def mlp(spec: ModelSpec) -> nn.Module:
    """Flatten, two hidden layers of ``16 * spec.width`` units (256 by default), linear head."""
    hidden = HIDDEN_PER_WIDTH * spec.width
    layers: list[nn.Module] = [nn.Flatten()]
    features = spec.channels * spec.image_size**2
    for _ in range(HIDDEN_LAYERS):
        layers += [nn.Linear(features, hidden), activation(spec.activation)]
        features = hidden
    layers.append(nn.Linear(features, spec.num_classes))
    return nn.Sequential(*layers)
