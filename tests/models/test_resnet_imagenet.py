"""The torchvision-layout ResNet-18 FedLeak's headline case attacks: its size, its stem's
down-sampling and its registry name (``resnet18`` stays the CIFAR variant)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradleak.config import ModelConfig
from gradleak.errors import ConfigError
from gradleak.models import MODELS, build_model
from gradleak.models.base import ModelSpec

TORCHVISION_RESNET18_PARAMETERS = 11_689_512
"""``sum(p.numel() for p in torchvision.models.resnet18().parameters())`` (1000 classes)."""


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_torchvision() -> None:
    model = MODELS.get("resnet18_imagenet")(ModelSpec(num_classes=1000, channels=3, image_size=128))
    assert count(model) == TORCHVISION_RESNET18_PARAMETERS


def test_cifar_variant_differs_in_its_stem() -> None:
    spec = ModelSpec(num_classes=1000, channels=3, image_size=128)
    imagenet, cifar = MODELS.get("resnet18_imagenet")(spec), MODELS.get("resnet18")(spec)
    # Same stages and head; the 7x7 stem has 3*64*(49 - 9) more weights than the 3x3 one.
    assert count(imagenet) - count(cifar) == 3 * 64 * (49 - 9)


def test_output_shape_and_stem_downsampling_at_128() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(name="resnet18_imagenet", activation="sigmoid")
    model = build_model(cfg, num_classes=1000, channels=3, image_size=128)
    model.train()
    images = torch.rand(2, 3, 128, 128)
    assert model(images).shape == (2, 1000)
    stem = nn.Sequential(*list(model.children())[:4])
    assert stem(images).shape == (2, 64, 32, 32)
    assert any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("width", [4, 16])
def test_width_scales_the_stages(width: int) -> None:
    model = build_model(ModelConfig(name="resnet18_imagenet", width=width), 10, 3, 64)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert linear.in_features == 32 * width


def test_small_images_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="image_size >= 64"):
        build_model(ModelConfig(name="resnet18_imagenet"), 10, 3, 32)
