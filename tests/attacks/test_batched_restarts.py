"""``attack.batch_restarts``: restarts run as one vmapped batch pick what one-after-another
restarts pick (same draws, loss and selection), the functional replay covers FedAvg, unsupported
cases run sequentially (``on`` says why in one warning line), and the batched loop keeps each
trial's best point through divergence and Ctrl-C."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.batched import optimize_trials
from gradleak.attacks.batched_restarts import batched_restarts_unsupported, worth_batching
from gradleak.attacks.optim import LoopSettings
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig, validate_config
from gradleak.errors import ConfigError
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities

KNOWN = Capabilities(knows_labels=True)


def _run(target, mode: str, name: str = "inverting_gradients", iterations: int = 12):
    torch.manual_seed(0)
    config = AttackConfig(
        name=name, labels="given", tv_weight=1e-3, log_every=1, restarts=3,
        iterations=iterations, batch_restarts=mode,
    )  # fmt: skip
    return ATTACKS.get(name)(config).reconstruct(target)


@pytest.mark.parametrize("steps", [1, 3])
def test_batched_restarts_choose_what_sequential_restarts_choose(cifar16, make_model, steps):
    images, labels = cifar16
    schedule = LocalSchedule(steps=steps, lr=0.1, batch_size=1 if steps > 1 else None)
    target = target_from_batch(
        make_model("lenet_dlg"), images[:2], labels[:2], schedule, capabilities=KNOWN
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "on" applies here: no fallback line
        batched = _run(target, "on")
    sequential = _run(target, "off")
    assert batched.iterations == sequential.iterations == 12
    assert batched.extra["best_restart"] == sequential.extra["best_restart"]
    assert batched.extra["restart_losses"] == pytest.approx(
        sequential.extra["restart_losses"], rel=1e-3, abs=1e-6
    )
    assert batched.best_loss == pytest.approx(sequential.best_loss, rel=1e-3, abs=1e-6)
    assert (batched.images - sequential.images).abs().max() < 0.05
    assert len({round(v, 6) for v in batched.extra["restart_losses"]}) == 3  # distinct draws


def test_unsupported_restarts_run_sequentially_and_on_says_why(cifar16, make_model):
    images, labels = cifar16
    net = make_model("convnet", norm="batchnorm", width=8)
    target = target_from_batch(net.train(), images[:2], labels[:2], capabilities=KNOWN)
    with pytest.warns(RuntimeWarning, match="batch_restarts.*BatchNorm in train mode"):
        rec = _run(target, "on", iterations=3)
    assert rec.iterations == 3 and len(rec.extra["restart_losses"]) == 3
    dlg = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1], capabilities=KNOWN)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # auto falls back silently
        _run(dlg, "auto", name="dlg", iterations=2)


def test_reasons_and_the_auto_rule(cifar16, make_model):
    images, labels = cifar16
    target = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1])
    attack = ATTACKS.get("inverting_gradients")(AttackConfig(labels="given"))
    loss = attack.loss(target)
    factory, settings = attack.parametrization()
    loop = attack.loop_settings()
    assert batched_restarts_unsupported(loss, target.labels, factory, settings, loop, target) == (
        "soft labels are optimised jointly"
    )
    assert batched_restarts_unsupported(loss, labels[:1], factory, settings, loop, target) == ""
    lbfgs = LoopSettings(5, 1.0, optimizer="lbfgs", signed=False)
    assert "curvature" in batched_restarts_unsupported(
        loss, labels[:1], factory, settings, lbfgs, target
    )
    assert worth_batching(target)  # a 16-px LeNet is far below the CPU threshold
    with pytest.raises(ConfigError, match="batch_restarts"):
        validate_config({"attack": {"batch_restarts": "sometimes"}})


def test_batched_loop_keeps_best_points_through_divergence_and_interrupt():
    target = torch.full((3, 1, 1, 2, 2), 0.25)

    def trial_loss(images: torch.Tensor, poison: torch.Tensor) -> torch.Tensor:
        loss = (images - 0.25).square().sum()
        return torch.where(poison & (loss < 0.3), torch.full_like(loss, math.nan), loss)

    starts = torch.ones(3, 1, 1, 2, 2)
    poison = torch.tensor([False, True, False])
    settings = LoopSettings(40, 0.05, schedule="constant", log_every=1)
    result = optimize_trials(trial_loss, starts, settings, (poison,))
    assert result.diverged is not None and result.diverged.tolist() == [False, True, False]
    assert result.best_losses[1] >= 0.3 - 1e-6  # kept its last finite point
    assert float(result.best_losses[0]) < 0.3 and float(result.best_losses[2]) < 0.3
    assert torch.isfinite(result.images).all()
    assert (result.images[0] - target[0]).abs().max() < 0.75

    calls: list[int] = []

    def stop(iteration: int, value: float) -> None:
        calls.append(iteration)
        if len(calls) == 3:
            raise KeyboardInterrupt

    stopped = optimize_trials(trial_loss, starts, settings, (poison,), callback=stop)
    assert stopped.interrupted and stopped.iterations == 3
    assert calls == [3, 6, 9]  # trials × iterations, as sequential restarts count
    assert torch.isfinite(stopped.best_losses).all()
