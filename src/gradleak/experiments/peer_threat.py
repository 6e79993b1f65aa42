"""The ``peer`` threat: an honest-but-curious client attacks the other clients' images.

The federation runs as configured; the attacker (``threat.attacker_client``) records only what
every client receives (its :class:`~gradleak.fl.views.PeerView`). It observes rounds
``threat.round`` … ``federation.rounds − 1``; several rounds are matched jointly, which is
sound only when the peers keep the same images, so the builder checks that. Ground truth is the
peers' images of the attacked round, never the attacker's own. Secure aggregation changes
nothing here: it hides uploads from the server, not global models from clients.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from gradleak.attacks.peer_target import peer_target
from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.preflight import THREAT_CHECKS
from gradleak.experiments.scenario import (
    THREATS,
    GroundTruth,
    Scenario,
    build_model_for,
    capabilities_of,
)
from gradleak.fl.build import build_federation, federation_data
from gradleak.fl.recording import RecordSpec
from gradleak.fl.simulation import Federation


@THREAT_CHECKS.register("peer")
def check_peer_threat(config: ExperimentConfig) -> None:
    """The peer threat's own impossible settings, before any data is read."""
    fed, threat = config.federation, config.threat
    if fed.num_clients < 2:
        raise ConfigError(
            "a peer attack needs at least 2 clients (the attacker and a victim); "
            f"federation.num_clients={fed.num_clients}"
        )
    if threat.attacker_client >= fed.num_clients:
        raise ConfigError(
            f"threat.attacker_client={threat.attacker_client} is not a client: the federation "
            f"has clients 0..{fed.num_clients - 1}"
        )
    if threat.round >= fed.rounds:
        raise ConfigError(
            f"threat.round={threat.round} is never run: federation.rounds={fed.rounds} "
            "(the attacker observes rounds threat.round .. federation.rounds - 1)"
        )


def peers_truth(federation: Federation, attacker: int, rounds: list[int]) -> GroundTruth:
    """The images and labels the attacker's peers trained on in ``rounds[0]``, peer by peer
    (the order the attack's dummy groups follow); the same images in every observed round."""
    first = rounds[0]
    peers = sorted(k for k in federation.batches[first] if k != attacker)
    for later in rounds[1:]:
        same_peers = sorted(k for k in federation.batches[later] if k != attacker) == peers
        if not same_peers or any(
            set(federation.batches[later][k].tolist()) != set(federation.batches[first][k].tolist())
            for k in peers
        ):
            raise ConfigError(
                "observing several rounds needs every peer to train on the same images each "
                "round: let all clients take part and give each exactly one batch "
                "(data.max_images = federation.num_clients × federation.batch_size)"
            )
    batches = [federation.batch_of(first, k) for k in peers]
    return GroundTruth(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))


@THREATS.register("peer")
def curious_peer(config: ExperimentConfig, device: torch.device) -> Scenario:
    """Run the federation, then let client ``threat.attacker_client`` attack its peers."""
    check_peer_threat(config)
    fed, threat = config.federation, config.threat
    attacker = threat.attacker_client
    data = federation_data(config)
    model = build_model_for(config, data, device)
    federation = build_federation(
        config, data, model, capabilities_of(config), RecordSpec.of(peers=[attacker])
    )
    federation.run_until(fed.rounds)
    rounds = list(range(threat.round, fed.rounds))
    truth = peers_truth(federation, attacker, rounds)
    target = peer_target(federation.peer_view(attacker), rounds)
    if target.capabilities.knows_labels:
        target = replace(target, labels=truth.labels.to(device))
    truth = GroundTruth(truth.images.to(device), truth.labels.to(device))
    summary = {
        "attacker": "peer",
        "attacker_client": attacker,
        "observed_rounds": rounds,
        "secure_aggregation": config.defense.secure_aggregation,
        **target.description,
    }
    return Scenario(target, truth, summary)
