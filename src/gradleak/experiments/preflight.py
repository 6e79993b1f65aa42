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

from typing import TypeVar

import torch
from torch import nn

import gradleak.attacks  # noqa: F401 - registers the built-in attacks
from gradleak.attacks.base import ATTACKS, Attack
from gradleak.config import ExperimentConfig
from gradleak.data.base import DATASETS
from gradleak.data.text_loading import is_text_dataset
from gradleak.errors import ConfigError, UnknownNameError
from gradleak.experiments.threats import THREATS, capabilities_of
from gradleak.experiments.threats.checks import THREAT_CHECKS
from gradleak.fl.adversaries import byzantine_clients
from gradleak.fl.aggregators import build_aggregator
from gradleak.fl.byzantine import build_adversary
from gradleak.fl.defenses import build_client_defenses
from gradleak.models import MODELS, build_model
from gradleak.registry import Registry

T = TypeVar("T")


def named(key: str, registry: Registry[T], name: str) -> T:
    """``registry``'s component ``name``; an unknown name is one line that names ``key``."""
    try:
        return registry.get(name)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{key}: {exc}") from None


def build_attack(config: ExperimentConfig) -> Attack:
    """The configured attack; its own options model validates ``attack.options`` here and it
    resolves every name inside them."""
    return named("attack.name", ATTACKS, config.attack.name)(config.attack)


def preflight(config: ExperimentConfig) -> ExperimentConfig:
    """Check everything a run can be refused for without reading data; return the effective
    config (the one to run and write).

    Raises:
        ConfigError: one line naming the key at fault (an unknown name, an option the
            component does not take, a capability the threat does not grant, a setting the
            model cannot support).
    """
    named("threat.attacker", THREATS, config.threat.attacker)
    if config.threat.attacker in THREAT_CHECKS:
        THREAT_CHECKS.get(config.threat.attacker)(config)
    check_deployment(config)
    attack = build_attack(config)
    check_modality(config, attack)
    attack.check_dataset(config.data.name)
    attack.check(capabilities_of(config))
    attack.check_model(shape_model(config))
    return config.model_copy(update={"attack": attack.config})


def check_deployment(config: ExperimentConfig) -> None:
    """The data set, the defences and the Byzantine clients: names resolved, options taken."""
    import gradleak.data  # noqa: F401 - registers the data set readers

    if not is_text_dataset(config.data.name):
        named("data.name", DATASETS, config.data.name)
    named("model.name", MODELS, config.model.name)
    fed = config.federation
    try:
        build_aggregator(config.defense.aggregator, fed.clients_per_round or fed.num_clients)
    except UnknownNameError as exc:
        raise UnknownNameError(f"defense.aggregator.name: {exc}") from None
    for i, entry in enumerate(config.defense.client):
        try:
            build_client_defenses([entry])
        except ConfigError as exc:
            raise type(exc)(f"defense.client[{i}]: {exc}") from None
    count = sum(len(b.clients) for b in fed.byzantine)
    for i, byz in enumerate(fed.byzantine):
        try:
            build_adversary(byz.name, fed.num_clients, count, **byz.options)
        except ConfigError as exc:
            raise type(exc)(f"federation.byzantine[{i}]: {exc}") from None
    byzantine_clients(fed.byzantine, fed.num_clients)


def data_modality(config: ExperimentConfig) -> str:
    """``"text"`` when ``data.name`` names text, else ``"image"``."""
    return "text" if is_text_dataset(config.data.name) else "image"


def check_modality(config: ExperimentConfig, attack: Attack) -> None:
    """Refuse an image attack on text data and a text attack on images, naming both."""
    modality = data_modality(config)
    if attack.modality != modality:
        same = sorted(name for name in ATTACKS if ATTACKS.get(name).modality == modality)
        raise ConfigError(
            f"attack {attack.name} reconstructs {attack.modality}s but data.name="
            f"{config.data.name} is {modality}: choose one of {', '.join(same)}"
        )


def shape_model(config: ExperimentConfig) -> nn.Module:
    """The configured architecture without weights (on the meta device: no memory, no random
    draws), for the checks that only need its layers."""
    architecture = config.model.model_copy(update={"checkpoint": None})
    with torch.device("meta"):
        if data_modality(config) == "text":
            return build_model(
                architecture,
                10,
                1,
                0,
                vocab_size=config.data.vocab_size,
                seq_len=config.data.seq_len,
            )
        return build_model(architecture, 10, config.data.channels or 3, config.data.image_size)


def effective_config(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the attack's effective section (its own defaults written in).

    Idempotent: the effective config of an effective config is itself, so a rerun of a written
    ``config.yaml`` has the same effective config and the same sweep id.
    """
    return config.model_copy(update={"attack": build_attack(config).config})
