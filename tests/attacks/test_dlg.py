"""DLG can start from a normal draw as the authors' code does (uniform, measured better, is the
default), and keeps the restart whose own gradient-matching loss is lowest (the attacker never
sees the true images to choose)."""

from __future__ import annotations

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.dlg import DLG
from gradleak.attacks.parametrizations import PixelParametrization
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig
from gradleak.errors import ConfigError, UnknownNameError


def test_normal_start_is_a_normal_draw() -> None:
    config = AttackConfig(name="dlg", options={"init": "normal"})
    factory, settings = DLG(config).parametrization()
    assert settings.init == "normal"
    param = factory((4, 3, 32, 32), torch.Generator().manual_seed(0), torch.device("cpu"), settings)
    assert isinstance(param, PixelParametrization)
    pixels = param.images().detach()
    assert abs(float(pixels.mean())) < 0.05
    assert abs(float(pixels.std()) - 1.0) < 0.05
    assert float((pixels < 0).float().mean()) > 0.4


def test_default_start_is_uniform_on_the_unit_box() -> None:
    config = AttackConfig(name="dlg")
    factory, settings = DLG(config).parametrization()
    pixels = factory((4, 3, 8, 8), torch.Generator().manual_seed(0), torch.device("cpu"), settings)
    values = pixels.images().detach()
    assert float(values.min()) >= 0.0 and float(values.max()) <= 1.0


def test_unknown_init_fails_when_the_attack_is_built() -> None:
    with pytest.raises((UnknownNameError, ConfigError), match="init"):
        ATTACKS.get("dlg")(AttackConfig(name="dlg", options={"init": "laplace"}))


def test_restart_kept_is_the_lowest_matching_loss(cifar16, make_model) -> None:
    images, labels = cifar16
    net = make_model("lenet_dlg")
    target = target_from_batch(net, images[2:3], labels[2:3])
    torch.manual_seed(3)
    config = AttackConfig(name="dlg", iterations=2, restarts=3, options={"lbfgs_inner": 2})
    recon = ATTACKS.get("dlg")(config).reconstruct(target)
    losses = recon.extra["restart_losses"]
    assert len(losses) == 3
    best = recon.extra["best_restart"]
    assert losses[best] == pytest.approx(min(losses))
    assert recon.best_loss == pytest.approx(min(losses))
    # Distinct losses, so keeping the first or the last restart would fail this test.
    assert len({round(v, 12) for v in losses}) == 3
