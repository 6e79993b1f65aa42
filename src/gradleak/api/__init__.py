"""The public Python API: attack your own model and update, and score what came back."""

from gradleak.api.core import AttackResult, attack, score

__all__ = ["AttackResult", "attack", "score"]
