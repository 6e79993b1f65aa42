"""The aggregation-rule interface shared by every rule.

A rule is a callable on the stacked ``(n, d)`` client updates of one round, with its parameters
fixed in ``__init__`` (ByzFL's interface). Besides the aggregate it reports *how* each client
entered it: the malicious-client attack steers selection and order statistics, so it needs to
know which clients a rule selected and how much of each client's update survived.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor

from gradleak.config import AggregatorConfig
from gradleak.errors import ConfigError
from gradleak.registry import Registry


@dataclass(frozen=True)
class AggregationResult:
    """What a rule produced from one round's updates.

    ``aggregate``: the ``(d,)`` vector the server applies.
    ``contributions``: ``(n,)`` each client's weight in the aggregate, averaged over coordinates
    (sums to 1 for every rule but ``norm_bound``, whose clipping shrinks it).
    ``selected``: indices of the clients a selection rule (Krum, Multi-Krum, Bulyan) picked, in
    the order picked; None for rules that select nobody.
    ``weights``: ``(n,)`` coefficients with ``aggregate == weights @ updates`` for rules that are
    one linear combination of whole updates (mean, Krum, Multi-Krum, norm bound, geometric
    median); None for coordinate-wise rules.
    ``sources``: ``(k, d)`` client indices whose values were averaged, each with weight ``1/k``,
    into each coordinate, for coordinate-wise rules (median, trimmed mean, Bulyan); None otherwise.
    """

    aggregate: Tensor
    contributions: Tensor
    selected: Tensor | None = None
    weights: Tensor | None = None
    sources: Tensor | None = None


class Aggregator(ABC):
    """A server-side aggregation rule on stacked client updates."""

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: AggregatorConfig) -> Aggregator:
        """Build the rule from the ``defense.aggregator`` config section."""

    def validate(self, num_clients: int) -> None:
        """Raise :class:`ConfigError` when the rule cannot run on ``num_clients`` updates."""
        if num_clients < 1:
            raise ConfigError("aggregation needs at least one client update per round")

    @abstractmethod
    def aggregate(self, updates: Tensor, weights: Tensor | None) -> AggregationResult:
        """Aggregate validated ``(n, d)`` updates; ``weights`` are normalised sample counts."""

    def __call__(self, updates: Tensor, weights: Tensor | None = None) -> AggregationResult:
        """Aggregate ``(n, d)`` updates; ``weights`` (n,) are optional per-client sample counts.

        Sample counts weight the averaging steps of ``mean``, ``multikrum``, ``norm_bound`` and
        ``geomed``; rules built on distances or order statistics ignore them, as Flower does.
        """
        if updates.dim() != 2:
            raise ValueError(f"updates must be a stacked (n, d) tensor, got shape {updates.shape}")
        self.validate(updates.shape[0])
        if weights is not None:
            weights = weights.to(device=updates.device, dtype=updates.dtype)
            valid = weights.shape == (updates.shape[0],) and bool((weights >= 0).all())
            if not valid or float(weights.sum()) <= 0:
                raise ValueError("weights must be n non-negative sample counts, not all zero")
            weights = weights / weights.sum()
        return self.aggregate(updates, weights)


AGGREGATORS: Registry[type[Aggregator]] = Registry("aggregator")


def uniform_weights(updates: Tensor, weights: Tensor | None) -> Tensor:
    """The given normalised weights, or equal weights over the ``n`` updates."""
    if weights is not None:
        return weights
    n = updates.shape[0]
    return updates.new_full((n,), 1.0 / n)


def source_contributions(sources: Tensor, num_clients: int, like: Tensor) -> Tensor:
    """Per-client share of a coordinate-wise aggregate whose coordinates average ``sources``."""
    counts = sources.flatten().bincount(minlength=num_clients)
    return counts.to(like.dtype) / sources.numel()
