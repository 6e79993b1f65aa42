"""Flower is an optional extra: importing the integration without it is one line, not a trace."""

from __future__ import annotations

import importlib.util

MISSING = (
    "gradleak.integrations.flower needs Flower (1.21 or newer, the Message API): "
    "pip install 'gradleak[flower]'"
)


def require_flwr() -> None:
    """Raise a one-line ImportError when Flower is not installed."""
    if importlib.util.find_spec("flwr") is None:
        raise ImportError(MISSING)
