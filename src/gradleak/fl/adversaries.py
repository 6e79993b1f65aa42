"""Byzantine clients inside the federation.

A malicious client is a client: each round it is sampled it receives what a client has (the
global model, its own honest update) and returns its upload; the federation does not know it is
malicious. The model-poisoning baselines of ``fl.byzantine`` are also *omniscient* as in their
papers (ALIE, IPM): they see the honest uploads of the round. Any object with an ``upload``
method (for example a leakage-driven malicious client) can take a client's place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from gradleak.config import ByzantineConfig
from gradleak.errors import ConfigError
from gradleak.fl.byzantine import Adversary, build_adversary
from gradleak.fl.functional import Params


@dataclass(frozen=True)
class ByzantineContext:
    """What a Byzantine client has in one round; updates are flat ``(d,)`` vectors."""

    round: int
    client_id: int
    parameters: Params
    buffers: Params
    own_update: Tensor
    honest_updates: Tensor
    generator: torch.Generator


class ByzantineClient(Protocol):
    """Replaces a client's upload with its own choice."""

    def upload(self, context: ByzantineContext) -> Tensor: ...


@dataclass(frozen=True)
class PoisoningClient:
    """A ``fl.byzantine`` baseline adversary as a client."""

    adversary: Adversary

    def upload(self, context: ByzantineContext) -> Tensor:
        honest = context.honest_updates
        if honest.shape[0] == 0:
            honest = context.own_update.unsqueeze(0)
        return self.adversary.craft(honest, context.own_update, context.generator)


def byzantine_clients(
    cfgs: Sequence[ByzantineConfig], num_clients: int
) -> dict[int, ByzantineClient]:
    """The configured ``federation.byzantine`` clients by id; each id at most once."""
    count = sum(len(cfg.clients) for cfg in cfgs)
    out: dict[int, ByzantineClient] = {}
    for cfg in cfgs:
        adversary = build_adversary(cfg.name, num_clients, count, **cfg.options)
        for client in cfg.clients:
            if client >= num_clients:
                raise ConfigError(
                    f"federation.byzantine names client {client}, but there are {num_clients} clients"
                )
            if client in out:
                raise ConfigError(f"federation.byzantine names client {client} twice")
            out[client] = PoisoningClient(adversary)
    return out
