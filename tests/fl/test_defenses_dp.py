"""DP accounting matches Opacus; DP-SGD's per-sample step clips and noises correctly."""

from __future__ import annotations

import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from gradleak.config import ClientDefenseConfig
from gradleak.errors import ConfigError
from gradleak.fl.defenses import build_client_defenses
from gradleak.fl.defenses_dp import clip_and_noise_per_sample, dp_epsilon


def test_epsilon_matches_the_accountant_called_directly() -> None:
    accountant = RDPAccountant()
    for _ in range(30):
        accountant.step(noise_multiplier=1.1, sample_rate=0.2)
    assert dp_epsilon(1.1, 0.2, 30, 1e-5) == pytest.approx(accountant.get_epsilon(delta=1e-5))


def test_epsilon_falls_with_more_noise_and_rises_with_rounds() -> None:
    epsilons = [dp_epsilon(sigma, 0.1, 50, 1e-5) for sigma in (0.7, 1.0, 2.0, 4.0)]
    assert epsilons == sorted(epsilons, reverse=True)
    assert dp_epsilon(1.0, 0.1, 100, 1e-5) > dp_epsilon(1.0, 0.1, 10, 1e-5)
    assert dp_epsilon(1.0, 0.1, 0, 1e-5) == 0.0
    assert dp_epsilon(0.0, 0.1, 5, 1e-5) == math.inf


@pytest.mark.parametrize(
    ("sigma", "rate", "steps", "delta"),
    [
        (-1.0, 0.1, 5, 1e-5),
        (1.0, 0.0, 5, 1e-5),
        (1.0, 1.5, 5, 1e-5),
        (1.0, 0.1, -1, 1e-5),
        (1.0, 0.1, 5, 0.0),
        (1.0, 0.1, 5, 1.0),
    ],
)
def test_bad_accounting_inputs_are_config_errors(
    sigma: float, rate: float, steps: int, delta: float
) -> None:
    with pytest.raises(ConfigError):
        dp_epsilon(sigma, rate, steps, delta)


def test_pipeline_reports_epsilon_only_with_noise() -> None:
    plain = build_client_defenses([ClientDefenseConfig(name="topk", fraction=0.5)])
    assert plain.epsilon(sample_rate=0.5, rounds=10) is None
    noisy_cfg = ClientDefenseConfig(
        name="clip_noise", clip_norm=1, noise_multiplier=1.3, delta=1e-5
    )
    noisy = build_client_defenses([noisy_cfg])
    assert noisy.epsilon(0.5, 10) == pytest.approx(dp_epsilon(1.3, 0.5, 10, 1e-5))
    no_delta = ClientDefenseConfig(name="clip_noise", clip_norm=1, noise_multiplier=1.3)
    with pytest.raises(ConfigError, match="delta"):
        build_client_defenses([no_delta]).epsilon(0.5, 10)


def _per_sample(batch: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    scales = torch.logspace(-2, 2, batch, dtype=torch.float64)
    return {
        "weight": scales[:, None, None]
        * torch.randn(batch, 3, 4, generator=gen, dtype=torch.float64),
        "bias": scales[:, None] * torch.randn(batch, 3, generator=gen, dtype=torch.float64),
    }


def test_each_sample_contributes_at_most_the_clip_norm() -> None:
    grads = _per_sample(8)
    clip = 1.0
    for i in range(8):
        one = {name: g[i : i + 1] for name, g in grads.items()}
        out = clip_and_noise_per_sample(one, clip, 0.0, torch.Generator().manual_seed(0))
        norm = math.sqrt(sum(float(t.square().sum()) for t in out.values()))
        original = math.sqrt(sum(float(g[i].square().sum()) for g in grads.values()))
        assert norm == pytest.approx(min(clip, original))
    summed = clip_and_noise_per_sample(grads, clip, 0.0, torch.Generator().manual_seed(0))
    assert summed["weight"].shape == (3, 4) and summed["bias"].shape == (3,)


def test_per_sample_noise_has_std_sigma_clip_over_batch() -> None:
    batch, clip, sigma = 4, 2.0, 1.5
    zeros = {"w": torch.zeros(batch, 200, 100, dtype=torch.float64)}
    out = clip_and_noise_per_sample(zeros, clip, sigma, torch.Generator().manual_seed(1))
    assert float(out["w"].std()) == pytest.approx(sigma * clip / batch, rel=0.02)


def test_per_sample_validation() -> None:
    with pytest.raises(ConfigError):
        clip_and_noise_per_sample(_per_sample(2), 1.0, -0.5, torch.Generator())
    with pytest.raises(ConfigError):
        clip_and_noise_per_sample(_per_sample(2), 0.0, 1.0, torch.Generator())
