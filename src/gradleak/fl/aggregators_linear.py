"""Rules whose aggregate is one weighted combination of whole updates: mean, norm bound, geomed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.config import AggregatorConfig
from gradleak.errors import ConfigError
from gradleak.fl.aggregators_base import (
    AGGREGATORS,
    AggregationResult,
    Aggregator,
    uniform_weights,
)


def _linear_result(updates: Tensor, weights: Tensor) -> AggregationResult:
    return AggregationResult(aggregate=weights @ updates, contributions=weights, weights=weights)


@AGGREGATORS.register("mean")
class Mean(Aggregator):
    """FedAvg: the (sample-count weighted) mean. No robustness; the reference for leakage."""

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> Mean:
        return cls()

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        return _linear_result(updates, uniform_weights(updates, weights))


@AGGREGATORS.register("norm_bound")
@dataclass(frozen=True)
class NormBound(Aggregator):
    """Clip every update to ``clip_norm`` (L2), then average (Sun et al., 2019).

    Bounds how far any one client, honest or not, can move the model in one round.
    """

    clip_norm: float

    def __post_init__(self) -> None:
        if self.clip_norm <= 0:
            raise ConfigError(f"norm_bound needs clip_norm > 0, got {self.clip_norm}")

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> NormBound:
        return cls(clip_norm=cfg.clip_norm)

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        norms = updates.norm(dim=1)
        scale = (self.clip_norm / norms.clamp_min(torch.finfo(updates.dtype).tiny)).clamp(max=1.0)
        return _linear_result(updates, uniform_weights(updates, weights) * scale)


@AGGREGATORS.register("geomed")
@dataclass(frozen=True)
class GeometricMedian(Aggregator):
    """Geometric median by smoothed Weiszfeld iterations (RFA, Pillutla et al., 2022).

    Minimises ``sum_i w_i * max(nu, ||z - u_i||)``: the smoothing ``nu`` keeps the iteration
    defined when ``z`` lands on an update, and ``tolerance`` (relative change of the objective)
    stops it early. Breakdown point 1/2 without knowing the number of attackers.
    """

    max_iterations: int = 100
    nu: float = 1e-6
    tolerance: float = 1e-7

    def __post_init__(self) -> None:
        if self.max_iterations < 1 or self.nu <= 0 or self.tolerance < 0:
            raise ConfigError(
                "geomed needs max_iterations >= 1, nu > 0 and tolerance >= 0, got "
                f"{self.max_iterations}, {self.nu}, {self.tolerance}"
            )

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> GeometricMedian:
        return cls(max_iterations=cfg.max_iterations)

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        alphas = uniform_weights(updates, weights)
        coefficients = alphas
        median = coefficients @ updates
        objective = self._objective(median, updates, alphas)
        for _ in range(self.max_iterations):
            inverse = alphas / (updates - median).norm(dim=1).clamp_min(self.nu)
            coefficients = inverse / inverse.sum()
            median = coefficients @ updates
            previous, objective = objective, self._objective(median, updates, alphas)
            if abs(previous - objective) <= self.tolerance * objective:
                break
        return _linear_result(updates, coefficients)

    def _objective(self, median: Tensor, updates: Tensor, alphas: Tensor) -> float:
        return float((alphas * (updates - median).norm(dim=1).clamp_min(self.nu)).sum())
