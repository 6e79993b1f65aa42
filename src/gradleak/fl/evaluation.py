"""Which data a federation trains on and which it is tested on.

The test split of the data set is used when the config trains on its train split and the data
set has one (CIFAR-10's ``test_batch``); otherwise a seeded ``federation.holdout_fraction`` of
the loaded images is held out before partitioning, so test images never reach a client.
With ``data.labels: client`` there is no test set: a label names a client of this federation,
and no image outside the clients' data belongs to one.
"""

from __future__ import annotations

import torch

from gradleak.config import ExperimentConfig
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.errors import ConfigError, DataError


def train_and_test(config: ExperimentConfig) -> tuple[ImageDataset, ImageDataset, str]:
    """(training data, test data, where the test data came from)."""
    if config.data.labels == "client":
        raise ConfigError(
            "data.labels=client has no test set to measure accuracy on; train with "
            "data.labels=dataset (a label names a client here, and no image outside the "
            "federation belongs to one)"
        )
    data = load_dataset(config.data, config.seed)
    if config.data.split == "train":
        try:
            test_cfg = config.data.model_copy(update={"split": "test", "max_images": None})
            return data, load_dataset(test_cfg, config.seed), "test split"
        except DataError:
            pass
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    held = max(1, int(config.federation.holdout_fraction * len(data)))
    return data.subset(order[held:].sort().values), data.subset(order[:held]), "held-out slice"
