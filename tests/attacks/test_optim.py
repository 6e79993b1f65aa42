"""The shared loop: best-iterate keeping, divergence, steppers and restarts."""

from __future__ import annotations

import math

import pytest
import torch

from gradleak.attacks.optim import LoopSettings, optimize, optimize_restarts
from gradleak.attacks.parametrizations import ParametrizationSettings, PixelParametrization
from gradleak.errors import ConfigError

TARGET = torch.full((1, 1, 4, 4), 0.25)


def pixels(seed: int = 0) -> PixelParametrization:
    gen = torch.Generator().manual_seed(seed)
    return PixelParametrization((1, 1, 4, 4), gen, torch.device("cpu"), ParametrizationSettings())


def test_nan_loss_stops_and_keeps_the_best_iterate() -> None:
    param = pixels()
    calls = {"n": 0}

    def loss():
        calls["n"] += 1
        value = (param.images() - TARGET).pow(2).sum()
        return value * math.nan if calls["n"] > 20 else value

    result = optimize(param, loss, LoopSettings(100, 0.05, "adam", "constant", signed=False))
    assert result.diverged and result.iterations == 20
    assert math.isfinite(result.best_loss)
    param.load_state(result.best_state)
    assert float((param.images() - TARGET).pow(2).sum().detach()) == pytest.approx(result.best_loss)


@pytest.mark.parametrize(
    ("optimizer", "lookahead"),
    [("adam", "none"), ("adamw", "l1"), ("adamw", "l2"), ("lbfgs", "none")],
)
def test_every_stepper_minimises_a_quadratic(optimizer: str, lookahead: str) -> None:
    param = pixels()
    start = float((param.images() - TARGET).pow(2).sum())
    signed = optimizer != "lbfgs"
    lr = 1.0 if optimizer == "lbfgs" else 0.05
    settings = LoopSettings(30, lr, optimizer, "cosine", signed, lookahead=lookahead)
    result = optimize(param, lambda: (param.images() - TARGET).pow(2).sum(), settings)
    assert not result.diverged
    assert result.best_loss < 0.1 * start


def test_lbfgs_refuses_signed_gradients() -> None:
    param = pixels()
    with pytest.raises(ConfigError, match="lbfgs"):
        optimize(param, lambda: param.images().sum(), LoopSettings(1, 1.0, "lbfgs", signed=True))


def test_restarts_keep_the_lowest_loss() -> None:
    seeds = iter(range(3))
    offsets = iter([0.5, 0.0, 0.9])

    def trial():
        param, offset = pixels(next(seeds)), next(offsets)
        return param, lambda: (param.images() - TARGET).pow(2).sum() + offset, []

    best = optimize_restarts(trial, LoopSettings(5, 0.01, "adam", "constant"), 3)
    assert best.restart == 1 and len(best.losses) == 3
    assert best.result.best_loss == min(best.losses)
