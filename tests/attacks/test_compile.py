"""``attack.compile``: the compiled step reconstructs what the eager one does, the functional
replay it traces equals autograd's (FedAvg included), and an unsupported case falls back with
one warning line.

The compiled runs use the ``aot_eager`` backend (``attacks.compiled.BACKEND``): the same Dynamo
trace and AOTAutograd forward/backward graphs as Inductor, without its C++ code generation,
which takes tens of seconds on a shared CPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks import compiled
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities


def _compile_available() -> bool:
    try:
        torch.compile(lambda x: x + 1, backend="aot_eager")(torch.zeros(1))
    except Exception:
        return False
    return True


needs_compile = pytest.mark.skipif(
    not _compile_available(), reason="torch.compile does not run on this platform"
)


def _reconstruct(target, compile_step: bool, **kwargs):
    torch.manual_seed(0)
    config = AttackConfig(
        name="inverting_gradients", labels="given", tv_weight=1e-3, log_every=1,
        compile=compile_step, **kwargs,
    )  # fmt: skip
    return ATTACKS.get("inverting_gradients")(config).reconstruct(target)


@needs_compile
def test_compiled_step_gives_the_eager_reconstruction(cifar16, make_model, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    images, labels = cifar16
    net = make_model("lenet_dlg")
    target = target_from_batch(net, images[:2], labels[:2], capabilities=Capabilities(True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback may happen here
        fast = _reconstruct(target, True, iterations=6, restarts=2)
    # The compiled step runs restarts one after another; so must its eager reference.
    slow = _reconstruct(target, False, iterations=6, restarts=2, batch_restarts="off")
    assert fast.iterations == slow.iterations == 6
    assert fast.extra["best_restart"] == slow.extra["best_restart"]
    assert fast.best_loss == pytest.approx(slow.best_loss, rel=1e-3, abs=1e-6)
    for (i, a), (j, b) in zip(fast.trace, slow.trace, strict=True):
        assert i == j and a == pytest.approx(b, rel=1e-3, abs=1e-6)
    # Signed steps amplify rounding only where a gradient entry is ~0: compare in the mean.
    assert (fast.images - slow.images).abs().mean() < 1e-3
    assert not torch.equal(fast.images, torch.zeros_like(fast.images))


def test_functional_replay_equals_autograd_replay_over_fedavg_steps(cifar16, make_model) -> None:
    images, labels = cifar16
    net = make_model("lenet_dlg")
    schedule = LocalSchedule(steps=3, lr=0.05, batch_size=1, momentum=0.5)
    target = target_from_batch(net, images[:3], labels[:3], schedule)
    model = target.update_model
    by_autograd = model(target.parameters, target.buffers, images[:3], labels[:3])
    by_func = model(target.parameters, target.buffers, images[:3], labels[:3], functional=True)
    for name, value in target.observed_update.items():
        assert torch.allclose(by_func[name], by_autograd[name], atol=1e-5), name
        assert torch.allclose(by_func[name], value, atol=1e-5), name


def test_soft_labels_fall_back_with_one_warning(cifar16, make_model) -> None:
    images, labels = cifar16
    target = target_from_batch(make_model("lenet_dlg"), images[:1], labels[:1])
    torch.manual_seed(0)
    config = AttackConfig(name="dlg", iterations=2, compile=True)
    with pytest.warns(RuntimeWarning, match="attack.compile: running eagerly") as caught:
        recon = ATTACKS.get("dlg")(config).reconstruct(target)
    assert len([w for w in caught if "attack.compile" in str(w.message)]) == 1
    assert recon.iterations == 2


@needs_compile
def test_a_second_target_on_the_same_model_is_not_confused(cifar16, make_model, monkeypatch):
    """The compiled step of one attack may be reused by the next on the same model: it must
    read the new target's gradient, not the first one's."""
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    images, labels = cifar16
    net = make_model("lenet_dlg")
    known = Capabilities(True)
    first = target_from_batch(net, images[:1], labels[:1], capabilities=known)
    second = target_from_batch(net, images[3:4], labels[3:4], capabilities=known)
    _reconstruct(first, True, iterations=3)
    fast = _reconstruct(second, True, iterations=3)
    slow = _reconstruct(second, False, iterations=3)
    assert fast.best_loss == pytest.approx(slow.best_loss, rel=1e-3, abs=1e-6)
    assert (fast.images - slow.images).abs().mean() < 1e-3
