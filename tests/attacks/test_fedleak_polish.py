"""FedLeak's pixel polishing: it starts from exactly the generator's returned images, never
returns an iterate its own loss ranks below that start, adds the detail SSIM measures on a real
image, numbers its steps after the generator's, and is skipped when the run was interrupted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS, Reconstruction
from gradleak.attacks.fedleak import POLISH_TV_WEIGHT, FedLeak
from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.target import AttackTarget, target_from_batch
from gradleak.config import AttackConfig
from gradleak.fl.knowledge import Capabilities
from gradleak.metrics.scoring import score_reconstruction

GENERATOR_STEPS, POLISH_STEPS = 40, 60


def fedleak(polish: int, **options: Any) -> FedLeak:
    config = AttackConfig(
        name="fedleak", iterations=GENERATOR_STEPS, lr=0.05, labels="given", log_every=5,
        options={"generator_width": 16, "polish_iterations": polish, "polish_lr": 0.01, **options},
    )  # fmt: skip
    attack = ATTACKS.get("fedleak")(config)
    assert isinstance(attack, FedLeak)
    return attack


@pytest.fixture
def case(
    cifar16: tuple[torch.Tensor, torch.Tensor], make_model: Callable[..., nn.Module]
) -> tuple[AttackTarget, torch.Tensor]:
    images, labels = cifar16
    truth, truth_labels = images[1:3], labels[1:3]
    caps = Capabilities(knows_labels=True)
    return target_from_batch(make_model("lenet_dlg"), truth, truth_labels, capabilities=caps), truth


def run(attack: FedLeak, target: AttackTarget, seen: list[int] | None = None) -> Reconstruction:
    torch.manual_seed(0)
    return attack.reconstruct(target, None if seen is None else lambda i, _: seen.append(i))


def test_polishing_starts_from_the_generators_images_and_adds_detail(
    case: tuple[AttackTarget, torch.Tensor],
) -> None:
    target, truth = case
    plain = run(fedleak(0), target)
    seen: list[int] = []
    attack = fedleak(POLISH_STEPS)
    polished = run(attack, target, seen)
    assert "generator_images" not in plain.extra
    assert torch.equal(polished.extra["generator_images"], plain.images)
    assert polished.extra["generator_best_loss"] == plain.best_loss
    # Its steps continue the generator's numbering, to the progress bar's total.
    assert polished.iterations == GENERATOR_STEPS + POLISH_STEPS == attack.total_iterations()
    assert seen == sorted(seen) and seen[-1] == attack.total_iterations()
    assert min(i for i, _ in polished.trace) >= GENERATOR_STEPS
    # By polishing's own loss the returned images are at least as good as the start.
    loss = MatchingLoss(target, OBJECTIVES.get("cosine"), POLISH_TV_WEIGHT)
    assert target.labels is not None
    before = float(loss(plain.images, target.labels).detach())
    after = float(loss(polished.images, target.labels).detach())
    assert after <= before
    # On two real CIFAR-10 images the detail shows: 0.62 -> 0.75 SSIM when written.
    was, now = (
        score_reconstruction(plain.images, truth),
        score_reconstruction(polished.images, truth),
    )
    assert now.ssim_mean > was.ssim_mean + 0.05, (was.ssim_mean, now.ssim_mean)
    assert now.psnr_mean > was.psnr_mean - 0.5


def test_an_interrupted_generator_stage_is_returned_unpolished(
    case: tuple[AttackTarget, torch.Tensor],
) -> None:
    target, _ = case

    def stop(iteration: int, _: float) -> None:
        if iteration >= 10:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    recon = fedleak(POLISH_STEPS).reconstruct(target, stop)
    assert recon.interrupted and recon.iterations <= GENERATOR_STEPS
    assert "generator_images" not in recon.extra


@pytest.mark.parametrize(
    "options", [{"polish_iterations": -1}, {"polish_lr": 0.0}, {"polish_lr": 2.0}]
)
def test_polishing_options_are_bounded(options: dict[str, Any]) -> None:
    from gradleak.errors import ConfigError

    with pytest.raises(ConfigError, match="polish"):
        ATTACKS.get("fedleak")(AttackConfig(name="fedleak", options=options))
