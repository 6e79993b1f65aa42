"""Reconstruction attacks. Importing this package registers every built-in attack."""

from gradleak.attacks import (
    curious_client,
    dlg,
    fedleak,
    fedleak_text,
    inverting_gradients,
    lamp,
    malicious_client,
    tag,
)
from gradleak.attacks.base import ATTACKS, Attack, Reconstruction
from gradleak.attacks.target import AttackTarget, UpdateModel

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackTarget",
    "Reconstruction",
    "UpdateModel",
    "curious_client",
    "dlg",
    "fedleak",
    "fedleak_text",
    "inverting_gradients",
    "lamp",
    "malicious_client",
    "tag",
]
