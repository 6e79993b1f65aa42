"""Robust rules stay near the honest mean under huge outliers; geomed solves its problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from gradleak.config import AggregatorConfig
from gradleak.fl.aggregators import GeometricMedian, build_aggregator

N, F, D = 11, 2, 20


def _honest_and_outliers(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N - F honest updates around a common direction, then F updates of norm 1e6."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(D, generator=gen)
    honest = centre + 0.1 * torch.randn(N - F, D, generator=gen)
    direction = torch.randn(F, D, generator=gen)
    outliers = 1e6 * direction / direction.norm(dim=1, keepdim=True)
    return honest, torch.cat([honest, outliers])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("name", "fields", "bound"),
    [
        ("krum", {}, 1.0),
        ("multikrum", {}, 1.0),
        ("median", {}, 1.0),
        ("trimmed_mean", {"beta": 0.2}, 1.0),
        ("bulyan", {}, 1.0),
        ("geomed", {}, 1.0),
        ("norm_bound", {"clip_norm": 6.0}, 2 * F * 6.0 / N),
    ],
)
def test_robust_rule_ignores_outliers(name: str, fields: dict, bound: float, seed: int) -> None:
    honest, updates = _honest_and_outliers(seed)
    rule = build_aggregator(AggregatorConfig(name=name, num_byzantine=F, **fields), N)
    out = rule(updates)
    assert float((out.aggregate - honest.mean(dim=0)).norm()) < bound
    if out.selected is not None:
        assert int(out.selected.max()) < N - F


def test_mean_is_not_robust() -> None:
    honest, updates = _honest_and_outliers(0)
    out = build_aggregator(AggregatorConfig(name="mean"), N)(updates)
    assert float((out.aggregate - honest.mean(dim=0)).norm()) > 1e4


@pytest.mark.parametrize("seed", [0, 1])
def test_geomed_minimises_the_sum_of_distances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(9, 5)) + np.eye(9, 5) * 4.0
    weights = rng.integers(1, 10, size=9).astype(float)

    def objective(z: np.ndarray) -> float:
        return float(weights @ np.linalg.norm(points - z, axis=1))

    reference = minimize(
        objective,
        points.mean(axis=0),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    ).x
    default = build_aggregator(AggregatorConfig(name="geomed"), 9)
    approximate = default(torch.tensor(points), weights=torch.tensor(weights)).aggregate
    assert objective(approximate.numpy()) <= objective(reference) * (1 + 1e-6)
    exact = GeometricMedian(max_iterations=5000, tolerance=0.0)
    out = exact(torch.tensor(points), weights=torch.tensor(weights))
    np.testing.assert_allclose(out.aggregate.numpy(), reference, atol=1e-6)
