"""Reconstruction attacks. Importing this package registers every built-in attack."""

from gradleak.attacks import dlg, fedleak, inverting_gradients
from gradleak.attacks.base import ATTACKS, Attack, Reconstruction
from gradleak.attacks.target import AttackTarget, UpdateModel

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackTarget",
    "Reconstruction",
    "UpdateModel",
    "dlg",
    "fedleak",
    "inverting_gradients",
]
