"""The maliciously curious client's planning: strategies, the joint one, and the client itself.

Everything here imports only ``fl`` (the client is one of the federation's clients).
Importing the package registers the upload strategies (``passive``, ``selection_steering``,
``coordinate_steering``, ``joint``).
"""

from gradleak.fl.malicious import joint
from gradleak.fl.malicious.strategies import STRATEGIES, build_strategy

__all__ = ["STRATEGIES", "build_strategy", "joint"]
