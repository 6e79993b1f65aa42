"""Check a config before any work, and turn it into the effective config that actually runs.

``config.py`` only knows the schema; whether ``attack.options.objektive`` exists, whether the
threat grants what the attack needs, or whether the model has the BatchNorm layers a prior
matches, only the named components know. :func:`preflight` asks each of them, before any data
is read or federation built, so that a typo in any run of a sweep fails the whole sweep at once
(Opacus' ``PrivacyEngine.validate`` is the model: one typed error, before training).

:func:`effective_config` fills in every default an attack chooses for itself (``attack.lr: null``
means "this attack's default"), so that the written ``config.yaml`` reruns the same attack and a
sweep's run id hashes what ran.
"""

from __future__ import annotations

import importlib

from gradleak.attacks.base import ATTACKS, Attack
from gradleak.config import ExperimentConfig

BUILTIN_COMPONENTS = ("gradleak.attacks", "gradleak.experiments", "gradleak.malicious")
"""Packages whose import registers the built-in attacks and threats."""


def register_builtin_components() -> None:
    """Import the packages that register the built-in attacks and threats."""
    for module in BUILTIN_COMPONENTS:
        importlib.import_module(module)


def build_attack(config: ExperimentConfig) -> Attack:
    """The configured attack; its own options model validates ``attack.options`` here."""
    register_builtin_components()
    return ATTACKS.get(config.attack.name)(config.attack)


def effective_config(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the attack's effective section (its own defaults written in).

    Idempotent: the effective config of an effective config is itself, so a rerun of a written
    ``config.yaml`` has the same effective config and the same sweep id.
    """
    return config.model_copy(update={"attack": build_attack(config).config})
