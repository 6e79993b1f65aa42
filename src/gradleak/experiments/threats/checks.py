"""Every threat's impossible settings, each as one clear line, before any data is read.

Pure functions of the config, so a run (or a whole sweep) can be refused up front.
"""

from __future__ import annotations

from collections.abc import Callable

from gradleak.attacks.targets import require_server_knowledge
from gradleak.config import ExperimentConfig
from gradleak.errors import CapabilityError, ConfigError
from gradleak.fl.malicious.joint import SELECTION
from gradleak.fl.malicious.strategies import TOLERANCE, build_strategy, strategy_name
from gradleak.registry import Registry

ThreatCheck = Callable[[ExperimentConfig], None]
"""A threat's own impossible settings, checked from the config alone (no data, no model)."""

THREAT_CHECKS: Registry[ThreatCheck] = Registry("threat check")
"""``threat.attacker`` -> its check, run by the pre-flight and by the threat itself."""


@THREAT_CHECKS.register("server")
def check_server_threat(config: ExperimentConfig) -> None:
    """The server threat's impossible settings, what it cannot know included."""
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
    require_server_knowledge(fed.protocol, threat.knows_local_hparams, threat.knows_num_samples)


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
        raise ConfigError(
            f"threat.num_malicious={f} colluders from client {threat.attacker_client} "
            f"need clients up to {ids[-1]}, but there are {n}"
        )
    if threat.victim >= n or threat.victim in ids:
        raise ConfigError(
            f"threat.victim={threat.victim} must be an honest client: one of 0..{n - 1} "
            f"other than the malicious {ids}"
        )
    a, b = TOLERANCE.get(rule, (1, 1))
    if n < a * f + b:
        raise ConfigError(
            f"threat.num_malicious={f} is too many for {rule} with {n} clients: it "
            f"needs n >= {a}f + {b}; lower threat.num_malicious or add clients"
        )
    if (fed.clients_per_round or n) != n:
        raise ConfigError(
            "the malicious peer needs every client in every round: unset "
            "federation.clients_per_round"
        )
    if any(k in ids for byz in fed.byzantine for k in byz.clients):
        raise ConfigError(
            f"federation.byzantine already replaces some of the malicious clients {ids}"
        )
    if threat.await_victim and rule != "krum":
        raise ConfigError(
            f"threat.await_victim needs defense.aggregator.name=krum (got {rule}): only "
            "Krum exposes one client's update whole"
        )
    if config.defense.secure_aggregation and rule != "mean":
        raise ConfigError("secure aggregation runs only under the mean")
    build_strategy(threat.strategy, rule, threat.strategy_options)
    aims = strategy_name(threat.strategy, rule) == "selection_steering" or (
        strategy_name(threat.strategy, rule) == "joint" and rule in SELECTION
    )
    if aims and not threat.knows_labels:
        raise ConfigError(
            f"threat.strategy={threat.strategy} under {rule} aims at threat.victim and "
            "estimates its update from the victim's labels: set threat.knows_labels=true"
        )
