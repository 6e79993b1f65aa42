"""The ``malicious_peer`` threat: f colluding clients upload to make the aggregate expose peers.

Clients ``threat.attacker_client`` .. ``+ num_malicious - 1`` are one
:class:`~gradleak.fl.malicious.client.MaliciousClient` (not omniscient: each round it gets only
a client's observation) from round ``threat.round`` on, aimed at ``threat.victim``, the honest
client it steers the rule towards. The attacker observes rounds ``threat.round`` …
``federation.rounds − 1`` through its :class:`~gradleak.fl.observations.ClientHistory`, reads
off each what its uploads made the aggregate expose (``attacks.targets.from_revealed``), and the
attack inverts that with the rule replayed. Ground truth is the images of the clients the
attacker believes exposed (the victim first); stealth and accuracy come from
``experiments.scoring_malicious``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch

from gradleak.attacks.labels import recover_labels
from gradleak.attacks.targets import Exposure, from_revealed
from gradleak.config import ExperimentConfig
from gradleak.experiments import scoring_malicious
from gradleak.experiments.threats.base import (
    THREATS,
    GroundTruth,
    Scenario,
    build_model_for,
    capabilities_of,
    with_public_text,
)
from gradleak.experiments.threats.checks import check_malicious_threat, malicious_ids
from gradleak.fl.build import build_federation, federation_data, federation_rules
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.malicious.client import ClientDP, MaliciousClient
from gradleak.fl.malicious.strategies import RuleShape, build_strategy, strategy_name
from gradleak.fl.observations import ClientHistory, RecordSpec
from gradleak.fl.protocol import client_clip_noise
from gradleak.fl.simulation import FederationRules
from gradleak.metrics.labels import label_accuracy


def client_dp(config: ExperimentConfig) -> ClientDP | None:
    """The honest clients' clip-and-noise defence, which every client knows."""
    entry = client_clip_noise(config)
    if entry is None or entry.clip_norm is None:
        return None
    return ClientDP(entry.clip_norm, (entry.noise_multiplier or 0.0) * entry.clip_norm)


def exposed_clients(groups: int, honest: list[int], victim: int, selected: list[int]) -> list[int]:
    """The clients whose images the attacker claims: the victim, then the other honest clients
    the rule used, then the rest, as many as the exposed update has groups."""
    used = [k for k in selected if k in honest and k != victim]
    rest = [k for k in honest if k != victim and k not in used]
    return [victim, *used, *rest][:groups]


def victim_exposed(
    history: ClientHistory, exposure: Exposure, round_: int, victim: int
) -> bool | None:
    """Whether a round exposed the victim's update alone, as the attacker can tell: one
    client's update whose last-layer labels are all the victim's (granted). None when the rule
    does not expose one client or the victim's labels are not granted."""
    granted = history.round(round_).granted_labels
    labels = None if granted is None else granted.get(victim)
    if exposure.groups != 1 or exposure.rule is not None or labels is None:
        return None
    record, schedule = history.round(round_), history.protocol.schedule
    assert schedule is not None
    update = ParamLayout.of(record.parameters).unflatten(exposure.update)
    counted = recover_labels(history.model, record.parameters, record.buffers, update, len(labels),
                             history.image_shape, schedule.gradient_multiplicity())  # fmt: skip
    return label_accuracy(counted.cpu(), labels.cpu()) == 1.0


def malicious_client(
    config: ExperimentConfig, model: torch.nn.Module, rules: FederationRules
) -> MaliciousClient:
    """The colluders of a checked ``malicious_peer`` config, as the federation runs them (also
    used by ``gradleak analyze --config`` to read their estimate off an honest round)."""
    threat, ids = config.threat, malicious_ids(config)
    shape = RuleShape.of(
        config.defense.aggregator.name, rules.aggregator, config.federation.num_clients, len(ids)
    )
    protocol = rules.protocol
    strategy = build_strategy(threat.strategy, shape.name, threat.strategy_options)
    return MaliciousClient(tuple(ids), threat.victim, strategy, shape, copy.deepcopy(model),
                           protocol.schedule, protocol.server_lr, threat.round, client_dp(config),
                           protocol.train_mode)  # fmt: skip


@THREATS.register("malicious_peer")
def malicious_peer(config: ExperimentConfig, device: torch.device) -> Scenario:
    """Run the federation with the malicious colluders, then build the attacker's target."""
    check_malicious_threat(config)
    fed, threat = config.federation, config.threat
    ids, victim = malicious_ids(config), threat.victim
    data = federation_data(config)
    model = build_model_for(config, data, device)
    rules = federation_rules(config, model, device)
    client = malicious_client(config, model, rules)
    shape = client.rule
    rules = replace(rules, byzantine={**rules.byzantine, **dict.fromkeys(ids, client)})
    federation = build_federation(
        config, data, model, capabilities_of(config), RecordSpec.of(peers=[ids[0]]), rules
    )
    rounds = list(range(threat.round, fed.rounds))
    outcomes = [federation.run_round() for _ in range(fed.rounds)]
    stealth = [
        scoring_malicious.outcome_stealth(o, ids, victim) for o in outcomes if o.round in rounds
    ]
    selected = {o.round: scoring_malicious.selected_clients(o) for o in outcomes}
    history = federation.client_history(ids[0])
    honest = [k for k in range(fed.num_clients) if k not in ids]

    def exposure(t: int) -> Exposure:
        record = history.round(t)
        revealed = client.revealed_between(t, record.parameters, record.next_parameters)
        claimed = exposed_clients(revealed.groups, honest, victim, selected[rounds[0]])
        return Exposure(
            revealed.update, revealed.groups, tuple(claimed), revealed.rule, revealed.uploads
        )

    exposures = {t: exposure(t) for t in rounds}
    awaited: dict[str, Any] = {}
    if threat.await_victim:
        beliefs = {t: victim_exposed(history, exposures[t], t, victim) for t in rounds}
        for entry in stealth:
            entry["attacker_sees_victim"] = beliefs[entry["round"]]
        found = [t for t in rounds if beliefs[t]]
        rounds = [found[0] if found else rounds[0]]
        awaited = {"awaited_round": rounds[0] if found else None}
        exposures = {rounds[0]: exposure(rounds[0])}
    target = with_public_text(from_revealed(history, exposures), data)
    scored = list(exposures[rounds[0]].clients)
    truth = GroundTruth(*federation.ground_truth(rounds[0], scored)).to(device)
    summary = {
        "attacker": "malicious_peer", "malicious_clients": ids, "victim": victim,
        "strategy": strategy_name(threat.strategy, shape.name), "observed_rounds": rounds,
        "scored_clients": scored, "stealth": stealth, **awaited,
        **scoring_malicious.accuracy_with_and_without(config, data, federation, device),
        **target.description,
    }  # fmt: skip
    return Scenario(target, truth, summary)
