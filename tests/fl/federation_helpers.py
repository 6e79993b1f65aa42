"""Small federations on synthetic images for the simulator tests (fast, no files)."""

from __future__ import annotations

import torch

from gradleak.config import ExperimentConfig, apply_overrides, validate_config
from gradleak.data.base import ImageDataset
from gradleak.experiments.threats import build_model_for
from gradleak.fl.build import build_federation
from gradleak.fl.observations import RecordSpec
from gradleak.fl.simulation import Federation

BASE = {
    "seed": 0,
    "model": {"name": "convnet", "width": 2},
    "federation": {
        "num_clients": 4,
        "batch_size": 4,
        "protocol": "fedavg",
        "local_steps": 3,
        "local_batch_size": 2,
        "local_lr": 0.1,
        "momentum": 0.5,
        "executor": "loop",
    },
    "data": {"image_size": 16, "partition": {"scheme": "dirichlet", "alpha": 1.0}},
}


def synthetic_data(count: int = 64, classes: int = 4, seed: int = 0) -> ImageDataset:
    """Images whose class sets the mean brightness of one channel: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    images = 0.3 * torch.rand(count, 3, 16, 16, generator=generator)
    images[:, 0] += (labels.float() / classes)[:, None, None]
    return ImageDataset("synthetic", images.clamp(0, 1), labels, classes)


def config_with(*overrides: str) -> ExperimentConfig:
    return validate_config(apply_overrides(BASE, list(overrides)))


def federation_for(
    config: ExperimentConfig, data: ImageDataset | None = None, record: RecordSpec = RecordSpec()
) -> Federation:
    data = data or synthetic_data()
    model = build_model_for(config, data, torch.device("cpu"))
    return build_federation(config, data, model, record=record)
