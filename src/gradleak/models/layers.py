"""Activation and normalisation layers chosen by name.

Gradient inversion results depend strongly on the activation (DLG needs a twice-differentiable
one such as sigmoid) and on the normalisation (batch norm leaks batch statistics), so both are
config choices, looked up in registries. Every layer is created fresh and never in-place, so
models stay usable with ``torch.func.functional_call`` and ``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from gradleak.registry import Registry

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("sigmoid")(nn.Sigmoid)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("leaky_relu")(nn.LeakyReLU)
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)
ACTIVATIONS.register("softplus")(nn.Softplus)

NORMS: Registry[Callable[[int], nn.Module]] = Registry("norm")

GROUPNORM_GROUPS = 8
"""Groups per GroupNorm layer (fewer when the channel count is not a multiple of 8)."""


@NORMS.register("batchnorm")
def _batchnorm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)


@NORMS.register("groupnorm")
def _groupnorm(channels: int) -> nn.Module:
    return nn.GroupNorm(math.gcd(channels, GROUPNORM_GROUPS), channels)


@NORMS.register("none")
def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


def activation(name: str) -> nn.Module:
    """A new activation layer; an unknown name raises an error listing the known ones."""
    return ACTIVATIONS.get(name)()


def norm2d(name: str, channels: int) -> nn.Module:
    """A new 2-d normalisation layer for ``channels`` feature maps."""
    return NORMS.get(name)(channels)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling layer (floor mode, no dilation)."""
    return (size + 2 * padding - kernel) // stride + 1
