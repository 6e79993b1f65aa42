"""gradleak: measure how much private training data leaks from federated learning.

``gradleak.attack`` and ``gradleak.score`` (the public Python API, ``gradleak.api``) are
imported on first use, so that ``import gradleak`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers see the real signatures; at run time they load on first use
    from gradleak.api import AttackResult, attack, score

__version__ = "0.1.0"

__all__ = ["AttackResult", "__version__", "attack", "score"]


def __getattr__(name: str) -> Any:
    if name in ("attack", "score", "AttackResult"):
        from gradleak import api

        return getattr(api, name)
    raise AttributeError(f"module 'gradleak' has no attribute {name!r}")
