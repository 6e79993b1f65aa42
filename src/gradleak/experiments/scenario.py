"""From a config to what the attacker sees and what scoring compares against.

A threat builder (registered by ``threat.attacker``) sets up the deployment and returns a
:class:`Scenario`: the attack's target, built only from the attacker's view, and, kept apart,
the ground truth of the images under attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gradleak.attacks.target import AttackTarget, UpdateModel
from gradleak.config import ExperimentConfig
from gradleak.data.base import ImageDataset
from gradleak.errors import CapabilityError, ConfigError
from gradleak.fl.build import build_federation, federation_data
from gradleak.fl.recording import RecordSpec
from gradleak.fl.views import Capabilities, ServerView
from gradleak.models import build_model
from gradleak.registry import Registry


@dataclass(frozen=True)
class GroundTruth:
    """The images under attack and their labels: for scoring only, never for the attack."""

    images: Tensor
    labels: Tensor


@dataclass(frozen=True)
class Scenario:
    target: AttackTarget
    truth: GroundTruth
    summary: dict[str, Any] = field(default_factory=dict)


ThreatBuilder = Callable[[ExperimentConfig, torch.device], Scenario]

THREATS: Registry[ThreatBuilder] = Registry("threat")


def capabilities_of(config: ExperimentConfig) -> Capabilities:
    threat = config.threat
    return Capabilities(
        knows_labels=threat.knows_labels,
        knows_buffers=threat.knows_buffers,
        sees_individual_updates=not config.defense.secure_aggregation,
        may_send_arbitrary_updates=threat.attacker == "malicious_peer",
    )


def build_model_for(config: ExperimentConfig, data: ImageDataset, device: torch.device) -> nn.Module:
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.num_classes, data.channels, data.image_size)
    return model.to(device).train(config.model.train_mode)


def target_from_server_view(
    view: ServerView, victim: int, model: nn.Module, batch_size: int
) -> AttackTarget:
    """The attack target a curious server forms from one client's visible upload."""
    upload = view.upload_of(victim)
    caps = view.capabilities
    return AttackTarget(
        update_model=UpdateModel(model, view.protocol.schedule, 1, view.protocol.train_mode),
        parameters=view.parameters,
        buffers=view.buffers,
        observed_update=upload.update,
        num_images=batch_size,
        image_shape=view.image_shape,
        num_classes=view.num_classes,
        capabilities=caps,
        labels=upload.labels if caps.knows_labels else None,
        description={"victim": victim, "round": view.round},
    )


@THREATS.register("server")
def curious_server(config: ExperimentConfig, device: torch.device) -> Scenario:
    """An honest-but-curious server attacks one client's upload in round ``threat.round`` of the
    configured federation: the model is the one the federation trained up to that round, and the
    upload is the victim's after its client-side defences."""
    fed, threat = config.federation, config.threat
    if threat.victim >= fed.num_clients:
        raise ConfigError(
            f"threat.victim={threat.victim} but the federation has {fed.num_clients} clients"
        )
    if config.defense.secure_aggregation:
        raise CapabilityError(
            "under secure aggregation the server sees only the sum of the uploads, not client "
            f"{threat.victim}'s; set defense.secure_aggregation=false or attack as a peer"
        )
    data = federation_data(config)
    model = build_model_for(config, data, device)
    federation = build_federation(
        config, data, model, capabilities_of(config), RecordSpec.of(server_rounds=[threat.round])
    )
    sampled = federation.sample_clients(threat.round)
    if threat.victim not in sampled:
        raise ConfigError(
            f"client {threat.victim} is not sampled in round {threat.round} (sampled: {sampled}); "
            "choose another threat.victim or threat.round"
        )
    federation.run_until(threat.round + 1)
    view = federation.server_view(threat.round)
    images, labels = federation.batch_of(threat.round, threat.victim)
    target = target_from_server_view(view, threat.victim, model, len(labels))
    truth = GroundTruth(images.to(device), labels.to(device))
    return Scenario(target, truth, {"attacker": "server", **target.description})
