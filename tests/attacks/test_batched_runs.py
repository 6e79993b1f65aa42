"""Several runs' attacks in one batch: each run gets the restart, loss and images it gets
alone; plans that differ in more than their tensors are kept apart."""

from __future__ import annotations

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.batched_runs import group_plans, run_plans
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig
from gradleak.fl.knowledge import Capabilities

KNOWN = Capabilities(knows_labels=True)


def _attack():
    config = AttackConfig(
        name="inverting_gradients", labels="given", tv_weight=1e-3, log_every=1, restarts=2,
        iterations=10, batch_restarts="on",
    )  # fmt: skip
    return ATTACKS.get("inverting_gradients")(config)


def _plan(target, seed):
    torch.manual_seed(seed)
    return _attack().batch_plan(target)


def _alone(target, seed):
    torch.manual_seed(seed)
    return _attack().reconstruct(target)


def test_runs_batched_together_get_what_each_gets_alone(cifar16, make_model):
    images, labels = cifar16
    targets = [
        target_from_batch(make_model("lenet_dlg", seed=s), images[s : s + 1], labels[s : s + 1],
                          capabilities=KNOWN)
        for s in range(3)
    ]  # fmt: skip
    plans = [_plan(t, s) for s, t in enumerate(targets)]
    assert all(p is not None for p in plans)
    assert group_plans(plans) == [[0, 1, 2]]
    together = [p.finish(best) for p, best in zip(plans, run_plans(plans), strict=True)]
    for seed, (target, batched) in enumerate(zip(targets, together, strict=True)):
        alone = _alone(target, seed)
        assert batched.extra["best_restart"] == alone.extra["best_restart"]
        assert batched.best_loss == pytest.approx(alone.best_loss, rel=1e-3, abs=1e-6)
        assert (batched.images - alone.images).abs().mean() < 1e-3
    # Each run matched its own update: the three reconstructions differ.
    assert (together[0].images - together[1].images).abs().mean() > 1e-2


def test_plans_of_different_models_are_kept_apart(cifar16, make_model):
    images, labels = cifar16
    sigmoid = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1],
                                capabilities=KNOWN)  # fmt: skip
    two = target_from_batch(make_model("lenet_dlg"), images[:2], labels[:2], capabilities=KNOWN)
    plans = [_plan(sigmoid, 0), _plan(two, 0)]
    assert group_plans(plans) == [[0], [1]]
    with pytest.raises(ValueError, match="group_plans"):
        run_plans(plans)


def test_soft_labels_have_no_plan(cifar16, make_model):
    images, labels = cifar16
    target = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1])
    dlg = ATTACKS.get("dlg")(AttackConfig(name="dlg", labels="recovered", iterations=2))
    assert dlg.batch_plan(target) is None
