"""``attack.stop_on_plateau``: a trial whose best loss stalls stops at the same iteration in the
sequential loop and in the batched one (each trial on its own), keeps its best point, and is
recorded; without the rule the whole budget runs; hostile rules are refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.batched import optimize_trials
from gradleak.attacks.optim import LoopSettings, optimize
from gradleak.attacks.parametrizations import ParametrizationSettings, PixelParametrization
from gradleak.attacks.plateau import PlateauRule, PlateauWatch
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig, validate_config
from gradleak.errors import ConfigError
from gradleak.fl.knowledge import Capabilities

SHAPE = (1, 3, 4, 4)


def test_the_watch_stalls_only_trials_that_stopped_gaining_after_patience() -> None:
    watch = PlateauWatch(PlateauRule(patience=10, tolerance=0.01))
    assert not watch.stalled(0, torch.tensor([1.0, 1.0, float("inf")])).any()
    assert not watch.stalled(5, torch.tensor([0.5, 1.0, float("inf")])).any()  # too early
    stalled = watch.stalled(10, torch.tensor([0.2, 0.995, float("inf")]))
    assert stalled.tolist() == [False, True, False]  # gain 80 %, 0.5 %, no finite loss


def _floor_loss(floor: float):
    """1 + how far the pixels lie above ``floor``: signed Adam walks down ~lr per step, then
    the gradient is exactly zero and the loss stays at 1 (a plateau at a known place)."""

    def loss(images: Tensor) -> Tensor:
        return 1.0 + (images - floor).clamp_min(0.0).sum()

    return loss


def _ones() -> PixelParametrization:
    """Pixels starting at 1 everywhere (the floors below are reached from there)."""
    param = PixelParametrization(SHAPE, torch.Generator(), torch.device("cpu"),
                                 ParametrizationSettings())  # fmt: skip
    param.start_from(torch.ones(SHAPE))
    return param


def _settings(iterations: int = 200) -> LoopSettings:
    rule = PlateauRule(patience=10, tolerance=1e-3)
    return LoopSettings(iterations, 0.01, "adam", "constant", True, 1, plateau=rule)


def _sequential(floor: float, settings: LoopSettings) -> int:
    param = _ones()
    loss = _floor_loss(floor)
    result = optimize(param, lambda: loss(param.images()), settings)
    assert result.plateaued and result.best_loss == pytest.approx(1.0, abs=1e-6)
    return result.iterations


def test_batched_trials_stop_where_each_would_alone() -> None:
    settings = _settings()
    floors = [0.9, 0.5]  # reached after ~10 and ~50 steps
    alone = [_sequential(f, settings) for f in floors]
    assert alone[0] < alone[1] < settings.iterations

    def trial_loss(images: Tensor, floor: Tensor) -> Tensor:
        return 1.0 + (images - floor).clamp_min(0.0).sum()

    starts = torch.ones((2, *SHAPE))
    batched = optimize_trials(trial_loss, starts, settings, (torch.tensor(floors),))
    assert batched.stopped_at is not None
    assert batched.stopped_at.tolist() == alone
    assert batched.iterations == alone[1]  # the batch ends when its last trial stops
    assert batched.best_losses.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_without_a_rule_the_whole_budget_runs() -> None:
    settings = LoopSettings(60, 0.01, "adam", "constant", True, 1)
    param = _ones()
    loss = _floor_loss(0.9)
    result = optimize(param, lambda: loss(param.images()), settings)
    assert result.iterations == 60 and not result.plateaued


@pytest.mark.parametrize("batching", ["off", "on"])
def test_an_attack_stops_on_a_plateau_and_records_it(cifar16, make_model, batching) -> None:
    images, labels = cifar16
    target = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1],
                               capabilities=Capabilities(knows_labels=True))  # fmt: skip
    rule = {"patience": 20, "tolerance": 0.5}  # loose on purpose: stalls within the budget
    config = AttackConfig(name="inverting_gradients", labels="given", iterations=400,
                          restarts=2, batch_restarts=batching, stop_on_plateau=rule)  # fmt: skip
    torch.manual_seed(0)
    rec = ATTACKS.get("inverting_gradients")(config).reconstruct(target)
    assert rec.iterations < 400
    assert rec.extra["stopped_on_plateau"] is True
    torch.manual_seed(0)
    full = ATTACKS.get("inverting_gradients")(config.model_copy(update={"stop_on_plateau": None}))
    whole = full.reconstruct(target)
    assert whole.iterations == 400 and "stopped_on_plateau" not in whole.extra
    assert whole.best_loss <= rec.best_loss  # the rest of the budget can only lower the best


@pytest.mark.parametrize(
    "rule", [{"patience": 0}, {"tolerance": 0.0}, {"tolerance": 1.0}, {"patience": "x"}, {"x": 1}]
)
def test_hostile_plateau_rules_are_refused(rule) -> None:
    with pytest.raises(ConfigError):
        validate_config({"attack": {"stop_on_plateau": rule}})


def test_the_public_api_takes_the_rule_and_names_a_bad_one() -> None:
    import gradleak

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    images, labels = torch.rand(1, 3, 4, 4), torch.tensor([3])
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    common = {"labels": labels, "num_images": 1, "image_shape": (3, 4, 4), "iterations": 300}
    rule = {"stop_on_plateau": {"patience": 20, "tolerance": 0.5}}
    rec = gradleak.attack("inverting_gradients", model, gradient=grads, options=rule, **common)
    assert rec.trace.iterations < 300 and rec.trace.extra["stopped_on_plateau"]
    with pytest.raises(ConfigError, match=r"^options\.stop_on_plateau\.patience"):
        bad = {"stop_on_plateau": {"patience": 0}}
        gradleak.attack("inverting_gradients", model, gradient=grads, options=bad, **common)
