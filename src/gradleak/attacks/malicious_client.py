"""The ``malicious_client`` attack: the curious client's inversion on a malicious peer's target.

The inversion itself is the curious client's (latent parametrisation, replayed local steps,
several rounds matched jointly); what differs is the target, which the ``malicious_peer``
threat builds with the rule's structure (:class:`~gradleak.attacks.rule_replay.RuleReplay`) and
which only a client that sent arbitrary updates can form.
"""

from __future__ import annotations

from typing import ClassVar

from gradleak.attacks.base import ATTACKS
from gradleak.attacks.curious_client import CuriousClient


@ATTACKS.register("malicious_client")
class MaliciousClientAttack(CuriousClient):
    name = "malicious_client"
    requires: ClassVar[frozenset[str]] = frozenset({"may_send_arbitrary_updates"})
