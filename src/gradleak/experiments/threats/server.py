"""The ``server`` threat: an honest-but-curious server attacks one client's upload.

``threat.victim`` is the client attacked in round ``threat.round``; the model is the one the
federation trained up to that round, the upload the victim's after its client-side defences,
and the labels, updated buffers, sample count and schedule are what the capabilities grant.
"""

from __future__ import annotations

import torch

from gradleak.attacks.targets import from_upload
from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.threats.base import (
    THREATS,
    GroundTruth,
    Scenario,
    build_model_for,
    capabilities_of,
    with_public_text,
)
from gradleak.experiments.threats.checks import check_server_threat
from gradleak.fl.build import build_federation, federation_data
from gradleak.fl.observations import RecordSpec


@THREATS.register("server")
def curious_server(config: ExperimentConfig, device: torch.device) -> Scenario:
    """Run the federation through ``threat.round`` and attack the victim's upload."""
    check_server_threat(config)
    threat = config.threat
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
    target = with_public_text(
        from_upload(federation.server_observation(threat.round, threat.victim)), data
    )
    truth = GroundTruth(*federation.ground_truth(threat.round, [threat.victim])).to(device)
    return Scenario(target, truth, {"attacker": "server", **target.description})
