"""Coordinate-wise order-statistic rules: median and trimmed mean.

Every coordinate of the aggregate is the average of a few clients' values at that coordinate;
``AggregationResult.sources`` says which, so that an attacker can see how much of each client's
update survived.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gradleak.config import AggregatorConfig
from gradleak.errors import ConfigError
from gradleak.fl.aggregators_base import (
    AGGREGATORS,
    AggregationResult,
    Aggregator,
    source_contributions,
)


def sorted_window_mean(updates: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Per coordinate, the mean of the order statistics ``start..stop-1`` and their clients."""
    values, order = updates.sort(dim=0, stable=True)
    return values[start:stop].mean(dim=0), order[start:stop]


def coordinate_median(updates: Tensor) -> tuple[Tensor, Tensor]:
    """Per-coordinate median (mean of the two middle values for even n, as numpy) and sources."""
    n = updates.shape[0]
    return sorted_window_mean(updates, (n - 1) // 2, n // 2 + 1)


def _coordinate_result(aggregate: Tensor, sources: Tensor, updates: Tensor) -> AggregationResult:
    contributions = source_contributions(sources, updates.shape[0], updates)
    return AggregationResult(aggregate=aggregate, contributions=contributions, sources=sources)


@AGGREGATORS.register("median")
class CoordinateMedian(Aggregator):
    """Coordinate-wise median (Yin et al., 2018): robust to fewer than n/2 attackers."""

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> CoordinateMedian:
        return cls()

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        return _coordinate_result(*coordinate_median(updates), updates)


@AGGREGATORS.register("trimmed_mean")
@dataclass(frozen=True)
class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean (Yin et al., 2018).

    Drops ``int(beta * n)`` values at each end of every coordinate, as ``scipy.stats.trim_mean``
    and Flower do, and averages the rest.
    """

    beta: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise ConfigError(
                f"trimmed_mean needs 0 <= beta < 0.5 so that every coordinate keeps a value, "
                f"got beta={self.beta}"
            )

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> TrimmedMean:
        return cls(beta=cfg.beta)

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        cut = int(self.beta * updates.shape[0])
        return _coordinate_result(
            *sorted_window_mean(updates, cut, updates.shape[0] - cut), updates
        )
