"""What every threat returns, the registry of threats, and what a threat grants its attacker.

A threat builder (registered by ``threat.attacker``) sets up the deployment and returns a
:class:`Scenario`: the attack's target, built only from the attacker's observation
(``attacks.targets``), and, kept apart, the ground truth of the images under attack, which only
scoring reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.attacks.target import AttackTarget, TargetT
from gradleak.config import ExperimentConfig
from gradleak.data.base import ImageDataset, TokenDataset
from gradleak.fl.knowledge import Capabilities
from gradleak.models import build_model
from gradleak.registry import Registry


@dataclass(frozen=True)
class GroundTruth:
    """The images under attack and their labels: for scoring only, never for the attack."""

    images: Tensor
    labels: Tensor

    def to(self, device: torch.device) -> GroundTruth:
        return GroundTruth(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Scenario:
    target: AttackTarget
    truth: GroundTruth
    summary: dict[str, Any] = field(default_factory=dict)


ThreatBuilder = Callable[[ExperimentConfig, torch.device], Scenario]

THREATS: Registry[ThreatBuilder] = Registry("threat")


def capabilities_of(config: ExperimentConfig) -> Capabilities:
    """What ``config``'s threat grants its attacker (pure data: checkable before any work)."""
    threat = config.threat
    return Capabilities(
        knows_labels=threat.knows_labels,
        knows_buffers=threat.knows_buffers,
        knows_local_hparams=threat.knows_local_hparams,
        knows_num_samples=threat.knows_num_samples,
        sees_individual_updates=not config.defense.secure_aggregation,
        may_send_arbitrary_updates=threat.attacker == "malicious_peer",
    )


def build_model_for(
    config: ExperimentConfig, data: ImageDataset, device: torch.device
) -> nn.Module:
    torch.manual_seed(config.seed)
    if isinstance(data, TokenDataset):
        model = build_model(
            config.model, data.num_classes, 1, 0, vocab_size=data.vocab_size, seq_len=data.seq_len
        )
    else:
        model = build_model(config.model, data.num_classes, data.channels, data.image_size)
    return model.to(device).train(config.model.train_mode)


def with_public_text(target: TargetT, data: ImageDataset) -> TargetT:
    """``target`` with the text model's tokeniser, which ships with the model and so is the
    attacker's to use, and the data set's name (public: the deployment's task; LAMP refuses a
    prior trained on it); an image target unchanged."""
    if isinstance(data, TokenDataset):
        description = {**target.description, "dataset": data.name}
        return replace(target, tokenizer=data.tokenizer, description=description)
    return target
