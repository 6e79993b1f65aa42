"""The model, the data and the local training, as a Flower quickstart app has them.

The data is the CIFAR-10 subset gradleak ships for its tests (read with gradleak's own reader;
found in ``../shared/data`` or ``$GRADLEAK_DATA``). Node ``p`` of ``n`` holds images
``p, p + n, ...``; in round ``r`` it trains on the ``r``-th run of ``batch`` of them.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.config import DataConfig
from gradleak.data import load_dataset

IMAGES = 64
"""How many images of the CIFAR-10 subset the federation holds (all nodes together)."""


class Net(nn.Module):
    """A small CNN: one strided convolution and a linear classifier (10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 5, stride=2, padding=2)
        self.fc = nn.Linear(12 * 16 * 16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))


def initial_model(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


@lru_cache(maxsize=1)
def _images() -> tuple[Tensor, Tensor]:
    data = load_dataset(DataConfig(name="cifar10", split="test", max_images=IMAGES), seed=0)
    return data.images, data.labels


def load_batch(partition: int, partitions: int, round_: int, batch: int) -> tuple[Tensor, Tensor]:
    """Node ``partition``'s training images (in [0, 1]) and labels of ``round_`` (from 1)."""
    images, labels = _images()
    mine = torch.arange(partition, len(labels), partitions)
    start = ((round_ - 1) * batch) % max(1, len(mine) - batch + 1)
    chosen = mine[start : start + batch]
    return images[chosen], labels[chosen]


def train(
    net: nn.Module, images: Tensor, labels: Tensor, lr: float, epochs: int, batch_size: int
) -> float:
    """Plain SGD over the node's images in order, ``epochs`` times; returns the last loss."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    net.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        for start in range(0, len(labels), batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(
                net(images[start : start + batch_size]), labels[start : start + batch_size]
            )
            loss.backward()
            optimizer.step()
    return float(loss.detach())
