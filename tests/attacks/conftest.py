"""Real CIFAR-10 test images and small untrained models for the attack tests.

Attacks are compute-bound; one intra-op thread avoids oversubscription on shared CPUs, which
otherwise slows double backward passes by an order of magnitude.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from gradleak.config import DataConfig, ModelConfig
from gradleak.data import load_dataset
from gradleak.metrics.image import psnr
from gradleak.models import build_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cifar32() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 64 CIFAR-10 test images (32×32) and labels."""
    data = load_dataset(DataConfig(name="cifar10", max_images=64, image_size=32), 0)
    return data.images.float(), data.labels


@pytest.fixture(scope="session")
def cifar16() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 16 CIFAR-10 test images resized to 16×16: cheap enough for short attacks."""
    data = load_dataset(DataConfig(name="cifar10", max_images=16, image_size=16), 0)
    return data.images.float(), data.labels


@pytest.fixture
def make_model() -> Callable[..., nn.Module]:
    def build(name: str, size: int = 16, seed: int = 0, **kwargs: object) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(ModelConfig(name=name, **kwargs), 10, 3, size)

    return build


@pytest.fixture
def noise_psnr() -> Callable[[torch.Tensor], float]:
    """PSNR of uniform noise against a truth: the floor an attack must clear."""

    def floor(truth: torch.Tensor) -> float:
        noise = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
        return float(psnr(noise, truth).mean())

    return floor
