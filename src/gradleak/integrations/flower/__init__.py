"""gradleak in a real Flower app (``pip install 'gradleak[flower]'``, Flower's Message API).

- :class:`CaptureStrategy` wraps the app's strategy and records what the server sees into a
  gradleak store; ``gradleak attack --capture STORE --round R --node K`` attacks it offline.
  Where it sits relative to Flower's DP wrappers and SecAgg+ decides what it captures: see
  ``gradleak.integrations.flower.strategy``.
- :func:`ground_truth_mod` and :func:`record_batch`: a simulation's ground truth, for scoring
  only. :func:`curious_peer_mod` and :func:`received_global_models`: a node's own view of the
  global models, for attacks on its peers.
- ``LegacyCaptureStrategy`` (``gradleak.integrations.flower.legacy``, imported on demand): the
  same capture for apps on the older ``configure_fit`` / ``aggregate_fit`` strategy API.
- :func:`malicious_peer_mod`: a node that uploads gradleak's maliciously curious update, against
  Flower's own robust strategies (``gradleak.integrations.flower.malicious``).
"""

from __future__ import annotations

from gradleak.integrations.flower._flwr import require_flwr

require_flwr()

from gradleak.integrations.flower.malicious import malicious_peer_mod  # noqa: E402
from gradleak.integrations.flower.mods import (  # noqa: E402
    curious_peer_mod,
    ground_truth_mod,
    received_global_models,
    record_batch,
)
from gradleak.integrations.flower.strategy import CaptureStrategy  # noqa: E402

__all__ = [
    "CaptureStrategy",
    "curious_peer_mod",
    "ground_truth_mod",
    "malicious_peer_mod",
    "received_global_models",
    "record_batch",
]
