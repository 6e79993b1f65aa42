"""Server-side aggregation rules, by name, built from the ``defense.aggregator`` config.

Importing this module registers every rule in :data:`AGGREGATORS`: ``mean``, ``krum``,
``multikrum``, ``median``, ``trimmed_mean``, ``bulyan``, ``norm_bound`` and ``geomed``.
"""

from __future__ import annotations

from gradleak.config import AggregatorConfig
from gradleak.fl.aggregators_base import AGGREGATORS, AggregationResult, Aggregator
from gradleak.fl.aggregators_coordinate import CoordinateMedian, TrimmedMean
from gradleak.fl.aggregators_linear import GeometricMedian, Mean, NormBound
from gradleak.fl.aggregators_selection import Bulyan, Krum, MultiKrum

__all__ = [
    "AGGREGATORS",
    "AggregationResult",
    "Aggregator",
    "Bulyan",
    "CoordinateMedian",
    "GeometricMedian",
    "Krum",
    "Mean",
    "MultiKrum",
    "NormBound",
    "TrimmedMean",
    "build_aggregator",
]


def build_aggregator(cfg: AggregatorConfig, num_clients: int) -> Aggregator:
    """The rule ``cfg`` names, checked to run on ``num_clients`` updates per round.

    Impossible settings (Krum with n < 2f + 3, Bulyan with n < 4f + 3, Multi-Krum selecting
    more than n - f) raise :class:`~gradleak.errors.ConfigError` here, before any training.
    """
    aggregator = AGGREGATORS.get(cfg.name).from_config(cfg)
    aggregator.validate(num_clients)
    return aggregator
