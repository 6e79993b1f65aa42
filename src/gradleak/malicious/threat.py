"""The ``malicious_peer`` threat: f colluding clients upload to make the aggregate expose peers.

Clients ``threat.attacker_client`` .. ``+ num_malicious - 1`` run a
:class:`~gradleak.malicious.client.MaliciousClient` from round ``threat.round`` on, aimed at
``threat.victim``. The attacker observes rounds ``threat.round`` … ``federation.rounds − 1``
through its :class:`~gradleak.fl.views.PeerView`, reads off each what its uploads made the
aggregate expose, and the attack inverts that with the rule's structure replayed. Ground truth
is the images of the clients the attacker believes exposed (the victim first), kept apart; the
stealth report and the accuracy with and without the attacker go to ``scenario.summary``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from gradleak.attacks.peer_target import MultiRoundTarget
from gradleak.attacks.target import AttackTarget
from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.peer_threat import check_peer_threat
from gradleak.experiments.preflight import THREAT_CHECKS
from gradleak.experiments.scenario import (
    THREATS,
    GroundTruth,
    Scenario,
    build_model_for,
    capabilities_of,
)
from gradleak.fl.build import build_federation, client_parts, federation_data, federation_rules
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.protocol import client_clip_noise
from gradleak.fl.recording import RecordSpec, ViewContext
from gradleak.fl.simulation import Federation
from gradleak.malicious.client import ClientDP, MaliciousClient
from gradleak.malicious.joint import SELECTION
from gradleak.malicious.replay import RuleReplay
from gradleak.malicious.stealth import accuracy_report, aggregation_of, round_stealth, test_data
from gradleak.malicious.strategies import Revealed, RuleShape, build_strategy, strategy_name

TOLERANCE = {"krum": (2, 3), "multikrum": (2, 3), "bulyan": (4, 3), "median": (2, 1),
             "trimmed_mean": (2, 1), "mean": (1, 1)}
"""rule -> (a, b): the rule stays meaningful against f attackers only when n >= a·f + b."""


def malicious_ids(config: ExperimentConfig) -> list[int]:
    threat = config.threat
    return list(range(threat.attacker_client, threat.attacker_client + threat.num_malicious))


@THREAT_CHECKS.register("malicious_peer")
def check_malicious_threat(config: ExperimentConfig) -> None:
    """Every impossible malicious setting, as one clear line, before any data is read."""
    check_peer_threat(config)
    fed, threat, rule = config.federation, config.threat, config.defense.aggregator.name
    n, f, ids = fed.num_clients, threat.num_malicious, malicious_ids(config)
    if ids[-1] >= n:
        raise ConfigError(f"threat.num_malicious={f} colluders from client {threat.attacker_client} "
                          f"need clients up to {ids[-1]}, but there are {n}")
    if threat.victim >= n or threat.victim in ids:
        raise ConfigError(f"threat.victim={threat.victim} must be an honest client: one of 0..{n - 1} "
                          f"other than the malicious {ids}")
    a, b = TOLERANCE.get(rule, (1, 1))
    if n < a * f + b:
        raise ConfigError(f"threat.num_malicious={f} is too many for {rule} with {n} clients: it "
                          f"needs n >= {a}f + {b}; lower threat.num_malicious or add clients")
    if (fed.clients_per_round or n) != n:
        raise ConfigError("the malicious peer needs every client in every round: unset "
                          "federation.clients_per_round")
    if any(k in ids for byz in fed.byzantine for k in byz.clients):
        raise ConfigError(f"federation.byzantine already replaces some of the malicious clients {ids}")
    if threat.await_victim and rule != "krum":
        raise ConfigError(f"threat.await_victim needs defense.aggregator.name=krum (got {rule}): only "
                          "Krum exposes one client's update whole")
    if config.defense.secure_aggregation and rule != "mean":
        raise ConfigError("secure aggregation runs only under the mean")
    build_strategy(threat.strategy, rule, threat.strategy_options)
    aims = strategy_name(threat.strategy, rule) == "selection_steering" or (
        strategy_name(threat.strategy, rule) == "joint" and rule in SELECTION)
    if aims and not threat.knows_labels:
        raise ConfigError(f"threat.strategy={threat.strategy} under {rule} aims at threat.victim and "
                          "estimates its update from the victim's labels: set threat.knows_labels=true")


def client_dp(config: ExperimentConfig) -> ClientDP | None:
    """The honest clients' clip-and-noise defence, which every client knows."""
    entry = client_clip_noise(config)
    if entry is None or entry.clip_norm is None:
        return None
    return ClientDP(entry.clip_norm, (entry.noise_multiplier or 0.0) * entry.clip_norm)


def exposed_clients(revealed: Revealed, shape: RuleShape, honest: list[int], victim: int,
                    selected: list[int]) -> list[int]:
    """The clients whose images the attacker claims: the victim, then the other honest clients
    the rule used, then the rest, as many as the exposed update has groups."""
    used = [k for k in selected if k in honest and k != victim]
    rest = [k for k in honest if k != victim and k not in used]
    return [victim, *used, *rest][: revealed.groups]


def build_target(federation: Federation, client: MaliciousClient, rounds: list[int],
                 dp: ClientDP | None) -> tuple[AttackTarget, list[Revealed]]:
    attacker = client.clients[0]
    view = federation.peer_view(attacker)
    by_round = {r.round: r for r in view.rounds}
    targets, exposures = [], []
    for t in rounds:
        record = by_round[t]
        revealed = client.revealed(record)
        layout = ParamLayout.of(record.parameters)
        replay = RuleReplay(view.model, view.protocol.schedule, revealed.groups, view.protocol.train_mode,
                            None if dp is None else dp.clip_norm, revealed.rule, revealed.uploads)
        targets.append(AttackTarget(
            update_model=replay, parameters=record.parameters, buffers=record.buffers,
            observed_update=layout.unflatten(revealed.update),
            num_images=revealed.groups * view.protocol.batch_size, image_shape=view.image_shape,
            num_classes=view.num_classes, capabilities=view.capabilities,
            description={"round": t, "exposed_groups": revealed.groups},
        ))
        exposures.append(revealed)
    if len(targets) == 1:
        return targets[0], exposures
    first = targets[0]
    return MultiRoundTarget(**first.__dict__, later_rounds=tuple(targets[1:])), exposures


def awaited_round(federation: Federation, client: MaliciousClient, rounds: list[int],
                  stealth: list[dict[str, Any]]) -> tuple[list[int], dict[str, Any]]:
    """``threat.await_victim``: the first round the attacker believes exposed the victim alone
    (its belief per round goes into ``stealth``), or the first round when none did."""
    records = {r.round: r for r in federation.peer_view(client.clients[0]).rounds}
    beliefs = {t: client.victim_exposed(records[t]) for t in rounds}
    for entry in stealth:
        entry["attacker_sees_victim"] = beliefs[entry["round"]]
    found = [t for t in rounds if beliefs[t]]
    attacked = found[0] if found else rounds[0]
    return [attacked], {"awaited_round": attacked if found else None}


@THREATS.register("malicious_peer")
def malicious_peer(config: ExperimentConfig, device: torch.device) -> Scenario:
    """Run the federation with the malicious colluders, then build the attacker's target."""
    check_malicious_threat(config)
    fed, threat = config.federation, config.threat
    ids, victim = malicious_ids(config), threat.victim
    data = federation_data(config)
    model = build_model_for(config, data, device)
    rules = federation_rules(config, model, device)
    shape = RuleShape.of(config.defense.aggregator.name, rules.aggregator, fed.num_clients, len(ids))
    dp = client_dp(config)
    federation: Federation

    def own_batch(t: int) -> tuple[Tensor, Tensor]:
        images, labels = federation.batch_of(t, ids[0])
        return images.to(device), labels.to(device)

    def victim_labels(t: int) -> Tensor | None:
        return federation.batch_of(t, victim)[1].to(device) if threat.knows_labels else None

    client = MaliciousClient(tuple(ids), build_strategy(threat.strategy, shape.name, threat.strategy_options),
                             shape, model, rules.protocol.schedule, rules.protocol.server_lr, threat.round,
                             own_batch, victim_labels, dp, rules.protocol.train_mode)
    rules = replace(rules, byzantine={**rules.byzantine, **dict.fromkeys(ids, client)})
    context = ViewContext(model, rules.protocol, capabilities_of(config),
                          (data.channels, data.image_size, data.image_size), data.num_classes)
    federation = Federation(model, data, client_parts(config, data), rules, context,
                            RecordSpec.of(peers=[ids[0]]))
    federation.run_until(0)
    rounds = list(range(threat.round, fed.rounds))
    stealth: list[dict[str, Any]] = []
    selected: dict[int, list[int]] = {}
    for _ in range(fed.rounds):
        outcome = federation.run_round()
        if outcome.round in rounds:
            uploads = {u.client_id: federation.layout.flatten(u.update) for u in outcome.uploads}
            result, order = aggregation_of(federation, uploads)
            stealth.append({"round": outcome.round, **round_stealth(result, order, ids, victim)})
            chosen = [] if result.selected is None else result.selected.tolist()
            selected[outcome.round] = [order[i] for i in chosen]
    awaited: dict[str, Any] = {}
    if threat.await_victim:
        rounds, awaited = awaited_round(federation, client, rounds, stealth)
    target, exposures = build_target(federation, client, rounds, dp)
    honest = [k for k in range(fed.num_clients) if k not in ids]
    truth_clients = exposed_clients(exposures[0], shape, honest, victim, selected[rounds[0]])
    batches = [federation.batch_of(rounds[0], k) for k in truth_clients]
    truth = GroundTruth(torch.cat([b[0] for b in batches]).to(device), torch.cat([b[1] for b in batches]).to(device))
    if target.capabilities.knows_labels:
        target = replace(target, labels=truth.labels)
    honest_run = build_federation(config, data, build_model_for(config, data, device))
    honest_run.run(fed.rounds)
    summary = {
        "attacker": "malicious_peer", "malicious_clients": ids, "victim": victim,
        "strategy": strategy_name(threat.strategy, shape.name), "observed_rounds": rounds,
        "scored_clients": truth_clients, "stealth": stealth, **awaited,
        **accuracy_report(federation, honest_run, test_data(config, data)),
        **target.description,
    }
    return Scenario(target, truth, summary)
