"""The federation's public protocol parameters, derived from the config in one place.

Clients, the server and every attacker replay local training with the same
:class:`~gradleak.fl.functional.LocalSchedule`, so it is computed here only.

Server step: ``w_{t+1} = w_t - server_lr * local_lr * aggregate(Δ)``, where each Δ is a
pseudo-gradient ``(w_t - w_local) / local_lr``; with ``server_lr = 1`` and the mean this is
plain FedAvg (the average of the local models), and FedSGD is one SGD step of size ``local_lr``.
"""

from __future__ import annotations

import math

from gradleak.config import ClientDefenseConfig, ExperimentConfig
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import ProtocolInfo


def local_schedule(config: ExperimentConfig) -> LocalSchedule:
    """FedSGD: one full-batch gradient. FedAvg: ``local_steps`` minibatch steps, or
    ``local_epochs`` passes over the round's batch of ``batch_size`` images."""
    fed = config.federation
    if fed.protocol == "fedsgd":
        return LocalSchedule(1, fed.local_lr, None, 0.0)
    steps = fed.local_steps
    if fed.local_epochs is not None:
        minibatch = min(fed.local_batch_size or fed.batch_size, fed.batch_size)
        steps = fed.local_epochs * math.ceil(fed.batch_size / minibatch)
    return LocalSchedule(steps, fed.local_lr, fed.local_batch_size, fed.momentum)


def protocol_info(config: ExperimentConfig) -> ProtocolInfo:
    fed = config.federation
    return ProtocolInfo(
        protocol=fed.protocol,
        num_clients=fed.num_clients,
        clients_per_round=fed.clients_per_round or fed.num_clients,
        batch_size=fed.batch_size,
        schedule=local_schedule(config),
        server_lr=fed.server_lr,
        aggregator=config.defense.aggregator.name,
        train_mode=config.model.train_mode,
        clip_norm=client_clip_norm(config),
    )


def client_clip_noise(config: ExperimentConfig) -> ClientDefenseConfig | None:
    """The client-side clip-and-noise defence with its clipping norm, if one is configured:
    public, since every client applies it to its own upload."""
    for entry in config.defense.client:
        if entry.name == "clip_noise" and entry.clip_norm is not None:
            return entry
    return None


def client_clip_norm(config: ExperimentConfig) -> float | None:
    entry = client_clip_noise(config)
    return None if entry is None or entry.clip_norm is None else float(entry.clip_norm)
