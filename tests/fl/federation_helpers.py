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
    config: ExperimentConfig,
    data: ImageDataset | None = None,
    record: RecordSpec = RecordSpec(),
    dtype: torch.dtype = torch.float32,
) -> Federation:
    """A federation on ``data`` (synthetic by default) whose model, weights and images are in
    ``dtype`` (float64 runs check that two code paths compute the same maths)."""
    data = data or synthetic_data()
    model = build_model_for(config, data, torch.device("cpu")).to(dtype)
    if dtype != data.images.dtype:
        data = ImageDataset(data.name, data.images.to(dtype), data.labels, data.num_classes)
    return build_federation(config, data, model, record=record)


def rounding_tolerance(dtype: torch.dtype, terms: int) -> float:
    """How far two evaluations of the same maths may drift apart, relative to the magnitude of
    the result, when each sums ``terms`` rounded terms in its own order.

    Each evaluation is within Higham's bound gamma_n = n*u / (1 - n*u) (u = eps / 2, the unit
    roundoff) of the exact sum, relative to the sum of the terms' magnitudes, so two of them
    are within 2*gamma_n of each other. A bound, not a measurement: it holds on any CPU and
    thread count, and a real difference in the maths (momentum, buffers, train mode) is orders
    of magnitude larger.
    """
    n_u = terms * torch.finfo(dtype).eps / 2
    if n_u >= 1:
        raise ValueError(f"{terms} terms exhaust {dtype}'s precision")
    return 2 * n_u / (1 - n_u)


def local_update_terms(federation: Federation) -> int:
    """The longest chain of additions behind one parameter of a client's update: a convolution's
    weight gradient sums over every pixel of the local minibatch, and each local step adds onto
    the weights the previous one left."""
    schedule = federation.rules.protocol.schedule
    batch = schedule.batch_size or federation.rules.protocol.batch_size
    side = federation.data.images.shape[-1]
    return batch * side * side * schedule.steps
