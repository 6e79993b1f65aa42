"""Poisoning baselines break plain averaging while robust rules hold."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import norm

from gradleak.config import AggregatorConfig
from gradleak.errors import ConfigError
from gradleak.fl.aggregators import build_aggregator
from gradleak.fl.byzantine import BYZANTINE, alie_z, build_adversary

N, F, D = 11, 3, 30


def _round(name: str, options: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Honest updates and the full round's stack, the last F rows crafted by adversaries."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(D, generator=gen)
    honest = centre + 0.1 * torch.randn(N, D, generator=gen)
    adversary = build_adversary(name, N, F, **options)
    crafted = [adversary.craft(honest[: N - F], honest[i], gen) for i in range(N - F, N)]
    return honest[: N - F], torch.cat([honest[: N - F], torch.stack(crafted)])


def _error(rule: str, updates: torch.Tensor, honest: torch.Tensor) -> float:
    aggregator = build_aggregator(AggregatorConfig(name=rule, num_byzantine=F), N)
    return float((aggregator(updates).aggregate - honest.mean(dim=0)).norm())


def test_registry_names() -> None:
    assert BYZANTINE.names() == ["alie", "gaussian", "ipm", "sign_flip"]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("name", "options"), [("sign_flip", {"scale": 10.0}), ("gaussian", {"std": 100.0})]
)
def test_mean_breaks_and_robust_rules_hold(name: str, options: dict, seed: int) -> None:
    honest, updates = _round(name, options, seed)
    scale = float(honest.mean(dim=0).norm())
    assert _error("mean", updates, honest) > scale
    for rule in ("krum", "median"):
        assert _error(rule, updates, honest) < 0.2 * scale


def test_alie_z_follows_the_paper() -> None:
    n, f = 50, 24
    supporters = n // 2 + 1 - f
    assert alie_z(n, f) == pytest.approx(norm.ppf((n - supporters) / n))
    with pytest.raises(ConfigError):
        alie_z(10, 6)


def test_alie_shifts_by_z_standard_deviations() -> None:
    honest, updates = _round("alie", {}, 0)
    shift = (updates[-1] - honest.mean(dim=0)) / honest.std(dim=0, correction=0)
    torch.testing.assert_close(shift, torch.full((D,), alie_z(N, F)))


def test_ipm_reverses_the_honest_direction() -> None:
    honest, updates = _round("ipm", {"epsilon": 0.5}, 0)
    torch.testing.assert_close(updates[-1], -0.5 * honest.mean(dim=0))


def test_gaussian_is_deterministic_under_a_seeded_generator() -> None:
    adversary = build_adversary("gaussian", N, F, std=2.0)
    own = torch.zeros(D)
    first = adversary.craft(own[None], own, torch.Generator().manual_seed(7))
    second = adversary.craft(own[None], own, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second)


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scale"):
        build_adversary("ipm", N, F, scale=2.0)
