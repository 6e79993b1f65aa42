"""Selection rules: Krum, Multi-Krum and Bulyan.

They pick whole client updates by their distances to the others. For leakage this matters
more than for robustness: when one honest update is selected, the new global model exposes that
client's update undiluted, which is what a malicious peer tries to bring about.
"""

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
    source_contributions,
)
from gradleak.fl.aggregators_coordinate import coordinate_median


def squared_distances(updates: Tensor) -> Tensor:
    """Pairwise squared L2 distances in float64, so that near-ties resolve as in numpy."""
    flat = updates.double()
    return torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist").square()


def krum_scores(distances: Tensor, num_byzantine: int) -> Tensor:
    """Krum score per update: the sum of squared distances to its ``n - f - 2`` nearest others.

    Below ``n = f + 3`` (reached inside Bulyan) one neighbour is used, as in Flower.
    """
    n = distances.shape[0]
    neighbours = min(max(1, n - num_byzantine - 2), n - 1)
    others = distances + torch.diag(distances.new_full((n,), torch.inf))
    return others.topk(neighbours, dim=1, largest=False).values.sum(dim=1)


def _require_clients(rule: str, num_clients: int, minimum: int, formula: str) -> None:
    if num_clients < minimum:
        raise ConfigError(
            f"{rule} needs at least {formula} = {minimum} clients per round, got {num_clients}; "
            "add clients or lower defense.aggregator.num_byzantine"
        )


@AGGREGATORS.register("krum")
@dataclass(frozen=True)
class Krum(Aggregator):
    """Krum (Blanchard et al., 2017): the single update with the lowest Krum score."""

    num_byzantine: int

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> Krum:
        return cls(num_byzantine=cfg.num_byzantine)

    def validate(self, num_clients: int) -> None:
        super().validate(num_clients)
        _require_clients("krum", num_clients, 2 * self.num_byzantine + 3, "2f + 3")

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        best = krum_scores(squared_distances(updates), self.num_byzantine).argmin()
        one_hot = torch.zeros(updates.shape[0], dtype=updates.dtype, device=updates.device)
        one_hot[best] = 1.0
        return AggregationResult(
            aggregate=updates[best].clone(),
            contributions=one_hot,
            selected=best.reshape(1),
            weights=one_hot,
        )


@AGGREGATORS.register("multikrum")
@dataclass(frozen=True)
class MultiKrum(Aggregator):
    """Multi-Krum: the (sample-weighted) mean of the ``m`` updates with the lowest Krum scores.

    ``num_selected`` defaults to ``n - f``, the largest ``m`` the rule allows.
    """

    num_byzantine: int
    num_selected: int | None = None

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> MultiKrum:
        return cls(num_byzantine=cfg.num_byzantine, num_selected=cfg.num_selected)

    def selection_size(self, num_clients: int) -> int:
        """``m``: how many updates are averaged."""
        if self.num_selected is None:
            return num_clients - self.num_byzantine
        return self.num_selected

    def validate(self, num_clients: int) -> None:
        super().validate(num_clients)
        _require_clients("multikrum", num_clients, 2 * self.num_byzantine + 3, "2f + 3")
        if not 1 <= self.selection_size(num_clients) <= num_clients - self.num_byzantine:
            raise ConfigError(
                f"multikrum selects m={self.num_selected} but needs 1 <= m <= n - f = "
                f"{num_clients - self.num_byzantine}; change defense.aggregator.num_selected"
            )

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        n = updates.shape[0]
        scores = krum_scores(squared_distances(updates), self.num_byzantine)
        chosen = scores.argsort(stable=True)[: self.selection_size(n)]
        mask = torch.zeros(n, dtype=updates.dtype, device=updates.device)
        mask[chosen] = 1.0
        coefficients = mask if weights is None else mask * weights
        coefficients = coefficients / coefficients.sum()
        return AggregationResult(
            aggregate=coefficients[chosen] @ updates[chosen],
            contributions=coefficients,
            selected=chosen,
            weights=coefficients,
        )


@AGGREGATORS.register("bulyan")
@dataclass(frozen=True)
class Bulyan(Aggregator):
    """Bulyan (El Mhamdi et al., 2018), with Flower's ``aggregate_bulyan`` semantics.

    Krum is applied ``theta = n - 2f`` times, each time to the updates not yet picked; then each
    coordinate averages the ``beta = theta - 2f`` picked values closest to the picked median.
    """

    num_byzantine: int

    @classmethod
    def from_config(cls, cfg: AggregatorConfig) -> Bulyan:
        return cls(num_byzantine=cfg.num_byzantine)

    def validate(self, num_clients: int) -> None:
        super().validate(num_clients)
        _require_clients("bulyan", num_clients, 4 * self.num_byzantine + 3, "4f + 3")

    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        n, f = updates.shape[0], self.num_byzantine
        distances = squared_distances(updates)
        remaining = torch.arange(n, device=updates.device)
        picked = []
        for _ in range(n - 2 * f):
            sub = distances[remaining][:, remaining]
            best = int(krum_scores(sub, f).argmin())
            picked.append(remaining[best])
            remaining = torch.cat([remaining[:best], remaining[best + 1 :]])
        selected = torch.stack(picked)
        pool = updates[selected]
        median, _ = coordinate_median(pool)
        keep = n - 4 * f
        closest = (pool - median).abs().argsort(dim=0, stable=True)[:keep]
        sources = selected[closest]
        return AggregationResult(
            aggregate=pool.gather(0, closest).mean(dim=0),
            contributions=source_contributions(sources, n, updates),
            selected=selected,
            sources=sources,
        )
