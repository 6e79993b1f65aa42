"""Model registry and the spec every model builder receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from gradleak.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """Everything a builder needs to know about the data and the user's choices."""

    num_classes: int
    channels: int
    image_size: int
    activation: str = "relu"
    width: int = 16
    norm: str = "batchnorm"
    vocab_size: int = 0
    """Text models only: the tokeniser's vocabulary size (0 for image models)."""
    seq_len: int = 0
    """Text models only: the fixed token length (0 for image models)."""


ModelBuilder = Callable[[ModelSpec], nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model")

LITERATURE_ACTIVATIONS: dict[str, str] = {"lenet_dlg": "sigmoid"}
"""Activations that a model's source paper used, where that differs from ReLU."""

MIN_IMAGE_SIZE = 16


def default_activation(model_name: str) -> str:
    """The activation a model gets when the user does not choose one (its paper's choice)."""
    return LITERATURE_ACTIVATIONS.get(model_name, "relu")
