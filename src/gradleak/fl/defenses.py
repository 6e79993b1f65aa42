"""Client-side defences: transforms a client applies to its flat update before uploading it.

Each defence registers in :data:`CLIENT_DEFENSES` and is built from one ``defense.client`` entry;
:func:`build_client_defenses` chains them in the listed order. They are the perturbations that
gradient-inversion papers test against (DLG's pruning, local DP, compression), so every one is a
pure function of the update and a ``torch.Generator``: the same seed gives the same upload.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from gradleak.config import ClientDefenseConfig
from gradleak.errors import ConfigError
from gradleak.fl.defenses_dp import clip_to_norm, dp_epsilon_composed, gaussian_like
from gradleak.registry import Registry

V = TypeVar("V")


class ClientDefense(ABC):
    """One transform of a client's flat ``(d,)`` update."""

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: ClientDefenseConfig) -> ClientDefense:
        """Build from one ``defense.client`` entry, with a ConfigError for missing values."""

    @abstractmethod
    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        """The defended update (same shape); randomness only from ``generator``."""


CLIENT_DEFENSES: Registry[type[ClientDefense]] = Registry("client defence")


def _required(cfg: ClientDefenseConfig, field: str, value: V | None) -> V:
    if value is None:
        raise ConfigError(f"client defence {cfg.name!r} needs {field}; set it in defense.client")
    return value


def _uniform(update: Tensor, generator: torch.Generator) -> Tensor:
    draw = torch.rand(
        update.shape, generator=generator, dtype=update.dtype, device=generator.device
    )
    return draw.to(update.device)


@CLIENT_DEFENSES.register("clip_noise")
@dataclass(frozen=True)
class ClipNoise(ClientDefense):
    """Local DP (Gaussian mechanism): clip to ``clip_norm``, add ``N(0, (sigma * C)^2)`` noise.

    ``delta`` is only needed to report epsilon (:meth:`ClientDefensePipeline.epsilon`).
    """

    clip_norm: float
    noise_multiplier: float
    delta: float | None = None

    def __post_init__(self) -> None:
        if self.clip_norm <= 0 or self.noise_multiplier < 0:
            raise ConfigError(
                "clip_noise needs clip_norm > 0 and noise_multiplier >= 0, got "
                f"{self.clip_norm} and {self.noise_multiplier}"
            )

    @classmethod
    def from_config(cls, cfg: ClientDefenseConfig) -> ClipNoise:
        return cls(
            clip_norm=_required(cfg, "clip_norm", cfg.clip_norm),
            noise_multiplier=_required(cfg, "noise_multiplier", cfg.noise_multiplier),
            delta=cfg.delta,
        )

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        std = self.noise_multiplier * self.clip_norm
        return clip_to_norm(update, self.clip_norm) + std * gaussian_like(update, generator)


@dataclass(frozen=True)
class _FractionDefense(ClientDefense):
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"client defence fraction must lie in (0, 1], got {self.fraction}")

    @classmethod
    def from_config(cls, cfg: ClientDefenseConfig) -> _FractionDefense:
        return cls(fraction=_required(cfg, "fraction", cfg.fraction))


@CLIENT_DEFENSES.register("topk")
class TopK(_FractionDefense):
    """Top-k sparsification: keep the ``ceil(fraction * d)`` largest-magnitude entries."""

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        keep = math.ceil(self.fraction * update.numel())
        kept = update.abs().topk(keep).indices
        return torch.zeros_like(update).index_copy_(0, kept, update[kept])


@CLIENT_DEFENSES.register("prune")
class Prune(_FractionDefense):
    """Gradient pruning, DLG's defence: zero the ``floor(fraction * d)`` smallest magnitudes."""

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        drop = math.floor(self.fraction * update.numel())
        dropped = update.abs().topk(drop, largest=False).indices
        return update.index_fill(0, dropped, 0.0)


@CLIENT_DEFENSES.register("sign")
class Sign(ClientDefense):
    """Scaled sign compression: ``sign(u) * ||u||_1 / d``, keeping the update's mean magnitude."""

    @classmethod
    def from_config(cls, cfg: ClientDefenseConfig) -> Sign:
        return cls()

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        return update.sign() * update.abs().mean()


@CLIENT_DEFENSES.register("quantize")
@dataclass(frozen=True)
class StochasticQuantize(ClientDefense):
    """Unbiased stochastic k-level quantisation (Suresh et al., 2017).

    ``levels`` evenly spaced values span ``[min(u), max(u)]``; each entry rounds to a neighbour
    at random with probabilities that keep its expectation, so averaging many clients stays fair.
    """

    levels: int

    def __post_init__(self) -> None:
        if self.levels < 2:
            raise ConfigError(f"quantize needs levels >= 2, got {self.levels}")

    @classmethod
    def from_config(cls, cfg: ClientDefenseConfig) -> StochasticQuantize:
        return cls(levels=_required(cfg, "levels", cfg.levels))

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        low, high = update.min(), update.max()
        step = (high - low) / (self.levels - 1)
        if float(step) == 0.0:
            return update.clone()
        position = (update - low) / step
        below = position.floor()
        rounded_up = _uniform(update, generator) < position - below
        return low + (below + rounded_up.to(update.dtype)) * step


class ClientDefensePipeline:
    """The configured defences, applied in order to a flat update."""

    def __init__(self, defenses: Sequence[ClientDefense]) -> None:
        self.defenses = tuple(defenses)

    def __call__(self, update: Tensor, generator: torch.Generator) -> Tensor:
        for defense in self.defenses:
            update = defense(update, generator)
        return update

    def epsilon(self, sample_rate: float, rounds: int) -> float | None:
        """Client-level epsilon after ``rounds`` rounds; None when no defence adds DP noise.

        See :func:`~gradleak.fl.defenses_dp.dp_epsilon` for what ``sample_rate`` means. Every
        ``clip_noise`` in the chain is a separate mechanism, so their costs compose (at the
        smallest delta given); the other defences are post-processing after the noise, and
        before it they cannot raise the sensitivity that clipping fixes.
        """
        noisy = [d for d in self.defenses if isinstance(d, ClipNoise)]
        if not noisy:
            return None
        deltas = [d.delta for d in noisy if d.delta is not None]
        if len(deltas) < len(noisy):
            raise ConfigError("clip_noise needs delta to report epsilon; set it in defense.client")
        mechanisms = [(d.noise_multiplier, sample_rate, rounds) for d in noisy]
        return dp_epsilon_composed(mechanisms, min(deltas))


def build_client_defenses(cfgs: Sequence[ClientDefenseConfig]) -> ClientDefensePipeline:
    """The pipeline of the ``defense.client`` entries, validated, in the order listed."""
    return ClientDefensePipeline([CLIENT_DEFENSES.get(c.name).from_config(c) for c in cfgs])
