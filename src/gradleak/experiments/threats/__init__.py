"""The threats: who attacks, what the federation hands them, what scoring compares against.

How a round flows into an attack (``fl.observations`` has the round itself):

1. A threat module (``server``, ``peer``, ``malicious``; registered in :data:`THREATS` by
   ``threat.attacker``) checks the config, builds the federation with a
   :class:`~gradleak.fl.observations.RecordSpec` saying what to record and the
   :class:`~gradleak.fl.knowledge.Capabilities` of :func:`capabilities_of`, and runs it.
2. It takes the attacker's observation (``Federation.server_observation`` or
   ``Federation.client_history``) and turns it into an attack target with ``attacks.targets``;
   nothing else goes into the target.
3. Separately, it asks ``Federation.ground_truth`` for the images under attack, which only
   scoring reads (:class:`GroundTruth`), and returns both as a :class:`Scenario`.

``threat.victim`` per threat: ``server`` — the client whose upload is attacked; ``peer`` —
unused (the attacker's peers are all the other clients of the round); ``malicious_peer`` — the
honest client the colluders steer the rule towards (scored first, among the exposed clients).
"""

from gradleak.experiments.threats import malicious, peer, server
from gradleak.experiments.threats.base import (
    THREATS,
    GroundTruth,
    Scenario,
    ThreatBuilder,
    build_model_for,
    capabilities_of,
)

__all__ = [
    "THREATS",
    "GroundTruth",
    "Scenario",
    "ThreatBuilder",
    "build_model_for",
    "capabilities_of",
    "malicious",
    "peer",
    "server",
]
