"""The ``peer`` threat: an honest-but-curious client attacks the other clients' images.

The federation runs as configured; the attacker (``threat.attacker_client``) records only what
every client receives (its :class:`~gradleak.fl.observations.ClientHistory`). It observes
rounds ``threat.round`` … ``federation.rounds − 1``; several rounds are matched jointly, which
is sound only when the peers keep the same images, so the builder checks that. Ground truth is
the peers' images of the attacked round, never the attacker's own. ``threat.victim`` is unused:
the victims are all the attacker's peers. Secure aggregation changes nothing here: it hides
uploads from the server, not global models from clients.
"""

from __future__ import annotations

import torch

from gradleak.attacks.targets import from_global_models
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
from gradleak.experiments.threats.checks import check_peer_threat
from gradleak.fl.build import build_federation, federation_data
from gradleak.fl.observations import RecordSpec
from gradleak.fl.simulation import Federation


def peers_truth(federation: Federation, attacker: int, rounds: list[int]) -> GroundTruth:
    """Scoring: the images and labels the attacker's peers trained on in ``rounds[0]``, peer by
    peer (the order the attack's dummy groups follow); the same images in every round."""
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
    return GroundTruth(*federation.ground_truth(first, peers))


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
    truth = peers_truth(federation, attacker, rounds).to(device)
    target = with_public_text(from_global_models(federation.client_history(attacker), rounds), data)
    summary = {
        "attacker": "peer",
        "attacker_client": attacker,
        "observed_rounds": rounds,
        "secure_aggregation": config.defense.secure_aggregation,
        **target.description,
    }
    return Scenario(target, truth, summary)
