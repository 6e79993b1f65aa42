"""The maliciously curious client (PAPERS.md §3): Byzantine uploads chosen to expose peers' data.

Importing this package registers the ``malicious_peer`` threat, the ``malicious_client`` attack
and the upload strategies (``passive``, ``selection_steering``, ``coordinate_steering``, ``joint``).
"""

from gradleak.malicious import attack, joint, threat
from gradleak.malicious.strategies import STRATEGIES, build_strategy

__all__ = ["STRATEGIES", "attack", "build_strategy", "joint", "threat"]
