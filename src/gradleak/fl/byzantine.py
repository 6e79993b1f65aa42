"""Classic model-poisoning baselines: what a Byzantine client uploads to break training.

They are the yardstick for the leakage-driven malicious client: they show that the robust
aggregators work as intended against attacks aimed at the model, before we measure what those
aggregators reveal to an attacker aimed at the data. Every adversary crafts one upload from the
honest updates it knows or estimates (``(k, d)``), its own honest update and a generator.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.registry import Registry


class Adversary(ABC):
    """A Byzantine client's upload rule."""

    @classmethod
    def create(cls, num_clients: int, num_byzantine: int, **options: Any) -> Adversary:
        """Build from the federation size and attack options; bad options are ConfigErrors."""
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigError(f"byzantine attack {cls.__name__}: {exc}") from None

    @abstractmethod
    def craft(self, honest_estimate: Tensor, own_update: Tensor, rng: torch.Generator) -> Tensor:
        """The ``(d,)`` upload, given ``(k, d)`` known honest updates and the own honest one."""


BYZANTINE: Registry[type[Adversary]] = Registry("byzantine attack")


def build_adversary(name: str, num_clients: int, num_byzantine: int, **options: Any) -> Adversary:
    """The adversary registered as ``name``, for ``num_byzantine`` of ``num_clients`` clients."""
    return BYZANTINE.get(name).create(num_clients, num_byzantine, **options)


@BYZANTINE.register("sign_flip")
@dataclass(frozen=True)
class SignFlip(Adversary):
    """Upload the own update reversed and scaled: ascent instead of descent."""

    scale: float = 1.0

    def craft(self, honest_estimate: Tensor, own_update: Tensor, rng: torch.Generator) -> Tensor:
        return -self.scale * own_update


@BYZANTINE.register("gaussian")
@dataclass(frozen=True)
class GaussianNoise(Adversary):
    """Upload pure noise ``N(0, std^2 I)``: a crude attack that distance-based rules filter out."""

    std: float = 1.0

    def __post_init__(self) -> None:
        if self.std < 0:
            raise ConfigError(f"gaussian byzantine attack needs std >= 0, got {self.std}")

    def craft(self, honest_estimate: Tensor, own_update: Tensor, rng: torch.Generator) -> Tensor:
        noise = torch.randn(own_update.shape, generator=rng, dtype=own_update.dtype)
        return self.std * noise.to(own_update.device)


@BYZANTINE.register("alie")
@dataclass(frozen=True)
class LittleIsEnough(Adversary):
    """A Little Is Enough (Baruch et al., 2019): shift every coordinate by ``z`` std deviations.

    The shift is small enough to hide among honest updates (so Krum and the median accept it)
    yet, being applied by all attackers in the same direction, biases the aggregate.
    """

    z: float

    @classmethod
    def create(cls, num_clients: int, num_byzantine: int, **options: Any) -> Adversary:
        if "z" not in options:
            options["z"] = alie_z(num_clients, num_byzantine)
        return super().create(num_clients, num_byzantine, **options)

    def craft(self, honest_estimate: Tensor, own_update: Tensor, rng: torch.Generator) -> Tensor:
        mean = honest_estimate.mean(dim=0)
        std = honest_estimate.std(dim=0, correction=0)
        return mean + self.z * std


def alie_z(num_clients: int, num_byzantine: int) -> float:
    """ALIE's ``z_max``: the Gaussian quantile of ``(n - s) / n`` with ``s = floor(n/2 + 1) - f``.

    ``s`` honest clients must lie farther from the mean than the attackers for the attackers to
    hold a majority; ``z_max`` is the largest shift that leaves that many behind them.
    """
    supporters = math.floor(num_clients / 2 + 1) - num_byzantine
    if supporters < 1 or num_byzantine < 0:
        raise ConfigError(
            f"alie needs 0 <= f < n/2 + 1 byzantine clients, got f={num_byzantine} of "
            f"n={num_clients}; pass z explicitly or lower the number of byzantine clients"
        )
    return NormalDist().inv_cdf((num_clients - supporters) / num_clients)


@BYZANTINE.register("ipm")
@dataclass(frozen=True)
class InnerProductManipulation(Adversary):
    """Inner product manipulation (Xie et al., 2020): upload ``-epsilon`` times the honest mean.

    A small ``epsilon`` passes distance-based rules while making the aggregate's inner product
    with the true gradient negative once enough attackers join; a large one wrecks the mean.
    """

    epsilon: float = 0.1

    def craft(self, honest_estimate: Tensor, own_update: Tensor, rng: torch.Generator) -> Tensor:
        return -self.epsilon * honest_estimate.mean(dim=0)
