"""Aggregation rules agree with Flower's reference implementations and validate their settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.server.strategy.aggregate import (
    aggregate,
    aggregate_bulyan,
    aggregate_krum,
    aggregate_median,
    aggregate_trimmed_avg,
)

from gradleak.config import AggregatorConfig
from gradleak.errors import ConfigError, UnknownNameError
from gradleak.fl.aggregators import AGGREGATORS, build_aggregator

SHAPES = [(3, 4), (5,), (2, 2, 3)]
SEEDS = [0, 1, 2]


def _client_layers(seed: int, n: int) -> tuple[torch.Tensor, list[tuple[list[np.ndarray], int]]]:
    """n clients' updates: stacked (n, d) for gradleak and as Flower's (layers, num_examples)."""
    rng = np.random.default_rng(seed)
    results = [([rng.normal(size=s) for s in SHAPES], int(rng.integers(1, 50))) for _ in range(n)]
    stacked = torch.tensor(np.stack([np.concatenate([a.ravel() for a in r]) for r, _ in results]))
    return stacked, results


def _flat(layers: list[np.ndarray]) -> torch.Tensor:
    return torch.tensor(np.concatenate([np.asarray(a).ravel() for a in layers]))


def _build(name: str, n: int, **fields: object) -> object:
    return build_aggregator(AggregatorConfig(name=name, **fields), num_clients=n)


def test_registry_holds_the_documented_names() -> None:
    assert AGGREGATORS.names() == sorted(
        ["mean", "krum", "multikrum", "median", "trimmed_mean", "bulyan", "norm_bound", "geomed"]
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [7, 10])
def test_weighted_mean_matches_flower(seed: int, n: int) -> None:
    updates, results = _client_layers(seed, n)
    counts = torch.tensor([c for _, c in results], dtype=torch.float64)
    out = _build("mean", n)(updates, weights=counts)
    torch.testing.assert_close(out.aggregate, _flat(aggregate(results)))
    assert out.weights is not None
    torch.testing.assert_close(out.weights @ updates, out.aggregate)
    torch.testing.assert_close(_build("mean", n)(updates).aggregate, updates.mean(dim=0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [7, 10])
def test_median_matches_flower(seed: int, n: int) -> None:
    updates, results = _client_layers(seed, n)
    out = _build("median", n)(updates)
    torch.testing.assert_close(out.aggregate, _flat(aggregate_median(results)))
    assert out.sources is not None and out.sources.shape[0] == (2 if n % 2 == 0 else 1)
    torch.testing.assert_close(out.contributions.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "beta"), [(7, 0.1), (10, 0.2), (11, 0.45)])
def test_trimmed_mean_matches_flower(seed: int, n: int, beta: float) -> None:
    updates, results = _client_layers(seed, n)
    out = _build("trimmed_mean", n, beta=beta)(updates)
    torch.testing.assert_close(out.aggregate, _flat(aggregate_trimmed_avg(results, beta)))
    kept = n - 2 * int(beta * n)
    assert out.sources is not None and out.sources.shape == (kept, updates.shape[1])
    rebuilt = updates.gather(0, out.sources).mean(dim=0)
    torch.testing.assert_close(rebuilt, out.aggregate)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "f"), [(7, 1), (10, 2), (12, 3)])
def test_krum_matches_flower(seed: int, n: int, f: int) -> None:
    updates, results = _client_layers(seed, n)
    out = _build("krum", n, num_byzantine=f)(updates)
    torch.testing.assert_close(out.aggregate, _flat(aggregate_krum(results, f, to_keep=0)))
    assert out.selected is not None and out.selected.shape == (1,)
    torch.testing.assert_close(updates[out.selected[0]], out.aggregate)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "f", "m"), [(7, 1, 3), (10, 2, 8), (12, 3, 1)])
def test_multikrum_matches_flower(seed: int, n: int, f: int, m: int) -> None:
    updates, results = _client_layers(seed, n)
    counts = torch.tensor([c for _, c in results], dtype=torch.float64)
    out = _build("multikrum", n, num_byzantine=f, num_selected=m)(updates, weights=counts)
    torch.testing.assert_close(out.aggregate, _flat(aggregate_krum(results, f, to_keep=m)))
    assert out.selected is not None and len(set(out.selected.tolist())) == m


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "f"), [(7, 1), (11, 2), (13, 2), (6, 0)])
def test_bulyan_matches_flower(seed: int, n: int, f: int) -> None:
    updates, results = _client_layers(seed, n)
    reference = aggregate_bulyan(list(results), f, aggregate_krum, to_keep=0)
    out = _build("bulyan", n, num_byzantine=f)(updates)
    torch.testing.assert_close(out.aggregate, _flat(reference))
    assert out.selected is not None and out.selected.shape == (n - 2 * f,)
    assert out.sources is not None and out.sources.shape == (n - 4 * f, updates.shape[1])
    assert set(out.sources.unique().tolist()) <= set(out.selected.tolist())


@pytest.mark.parametrize(
    ("name", "n", "fields"),
    [
        ("krum", 6, {"num_byzantine": 2}),
        ("multikrum", 6, {"num_byzantine": 2}),
        ("multikrum", 9, {"num_byzantine": 2, "num_selected": 8}),
        ("bulyan", 10, {"num_byzantine": 2}),
        ("mean", 0, {}),
    ],
)
def test_impossible_settings_are_config_errors(name: str, n: int, fields: dict) -> None:
    with pytest.raises(ConfigError):
        _build(name, n, **fields)


def test_minimum_settings_are_accepted() -> None:
    _build("krum", 7, num_byzantine=2)
    _build("multikrum", 7, num_byzantine=2, num_selected=5)
    _build("bulyan", 11, num_byzantine=2)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="geomed"):
        _build("average", 3)


def test_contributions_describe_the_aggregate() -> None:
    updates, _ = _client_layers(3, 9)
    for name in AGGREGATORS.names():
        out = _build(name, 9, num_byzantine=1, clip_norm=1e6)(updates)
        assert out.contributions.shape == (9,)
        torch.testing.assert_close(out.contributions.sum(), torch.tensor(1.0, dtype=torch.float64))
        if out.weights is not None:
            torch.testing.assert_close(out.weights @ updates, out.aggregate)
