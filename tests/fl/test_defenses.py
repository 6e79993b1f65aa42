"""Client defences keep their promises: norm bounds, sparsity, unbiasedness, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from gradleak.config import ClientDefenseConfig
from gradleak.errors import ConfigError
from gradleak.fl.defenses import CLIENT_DEFENSES, build_client_defenses

D = 1000


def _update(seed: int = 0) -> torch.Tensor:
    return 5.0 * torch.randn(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _apply(update: torch.Tensor, seed: int = 0, **fields: object) -> torch.Tensor:
    pipeline = build_client_defenses([ClientDefenseConfig(**fields)])
    return pipeline(update, torch.Generator().manual_seed(seed))


def test_registry_names() -> None:
    assert CLIENT_DEFENSES.names() == ["clip_noise", "prune", "quantize", "sign", "topk"]


def test_clip_without_noise_bounds_the_norm() -> None:
    out = _apply(_update(), name="clip_noise", clip_norm=1.5, noise_multiplier=0.0)
    assert float(out.norm()) == pytest.approx(1.5)
    small = 0.001 * _update()
    torch.testing.assert_close(
        _apply(small, name="clip_noise", clip_norm=1.5, noise_multiplier=0.0), small
    )


def test_clip_noise_adds_noise_of_the_right_scale() -> None:
    update = torch.zeros(20000, dtype=torch.float64)
    out = _apply(update, name="clip_noise", clip_norm=2.0, noise_multiplier=0.5)
    assert float(out.std()) == pytest.approx(1.0, rel=0.03)
    assert abs(float(out.mean())) < 0.03


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.55, 1.0])
def test_topk_keeps_the_largest_entries(fraction: float) -> None:
    update = _update()
    out = _apply(update, name="topk", fraction=fraction)
    keep = math.ceil(fraction * D)
    assert int((out != 0).sum()) == keep
    assert float(out.abs().max()) == float(update.abs().max())
    kept = out != 0
    torch.testing.assert_close(out[kept], update[kept])
    if keep < D:
        assert float(update[~kept].abs().max()) <= float(update[kept].abs().min())


@pytest.mark.parametrize("fraction", [0.1, 0.7, 1.0])
def test_prune_zeroes_the_smallest_entries(fraction: float) -> None:
    update = _update()
    out = _apply(update, name="prune", fraction=fraction)
    assert int((out == 0).sum()) == math.floor(fraction * D)
    kept = out != 0
    torch.testing.assert_close(out[kept], update[kept])


def test_sign_keeps_signs_and_mean_magnitude() -> None:
    update = _update()
    out = _apply(update, name="sign")
    assert torch.equal(out.sign(), update.sign())
    assert float(out.abs().mean()) == pytest.approx(float(update.abs().mean()))
    assert out.abs().unique().numel() == 1


def test_quantize_uses_k_levels_and_is_unbiased() -> None:
    update = _update()[:50]
    pipeline = build_client_defenses([ClientDefenseConfig(name="quantize", levels=4)])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([pipeline(update, gen) for _ in range(4000)])
    assert draws[0].unique().numel() <= 4
    spacing = float(update.max() - update.min()) / 3
    torch.testing.assert_close(draws.mean(dim=0), update, atol=0.05 * spacing, rtol=0.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "clip_noise", "clip_norm": 1.0, "noise_multiplier": 1.0},
        {"name": "quantize", "levels": 3},
    ],
)
def test_random_defences_are_deterministic_per_seed(fields: dict) -> None:
    update = _update()
    torch.testing.assert_close(_apply(update, 3, **fields), _apply(update, 3, **fields))
    assert not torch.equal(_apply(update, 3, **fields), _apply(update, 4, **fields))


def test_defences_compose_in_order() -> None:
    cfgs = [
        ClientDefenseConfig(name="topk", fraction=0.1),
        ClientDefenseConfig(name="clip_noise", clip_norm=1.0, noise_multiplier=0.0),
    ]
    out = build_client_defenses(cfgs)(_update(), torch.Generator().manual_seed(0))
    assert int((out != 0).sum()) == 100
    assert float(out.norm()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "clip_noise", "clip_norm": 1.0},
        {"name": "clip_noise", "noise_multiplier": 1.0},
        {"name": "topk"},
        {"name": "prune"},
        {"name": "quantize"},
        {"name": "quantize", "levels": 1},
    ],
)
def test_missing_or_bad_parameters_are_config_errors(fields: dict) -> None:
    with pytest.raises(ConfigError, match=str(fields["name"])):
        build_client_defenses([ClientDefenseConfig(**fields)])


def test_unknown_defence_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="topk"):
        build_client_defenses([ClientDefenseConfig(name="dropout")])
