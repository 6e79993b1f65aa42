"""Byzantine clients inside the federation.

A malicious client is a client: each round it is sampled it receives what a client has (the
global model, its own batch and honest update, as a :class:`~gradleak.fl.observations.
ClientRound`) and returns its upload; the federation does not know it is malicious. Only an
adversary that declares ``omniscient = True`` is handed an :class:`OmniscientContext` with the
honest uploads of the round: the model-poisoning baselines of ``fl.byzantine``, omniscient as
in their papers (ALIE, IPM). Any other client (the maliciously curious one) gets a plain
:class:`ByzantineContext`, which has no field for other clients' uploads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from gradleak.config import ByzantineConfig
from gradleak.errors import ConfigError
from gradleak.fl.byzantine import Adversary, build_adversary
from gradleak.fl.functional import Params
from gradleak.fl.observations import ClientRound


@dataclass(frozen=True)
class ByzantineContext:
    """What a Byzantine client has in one round: what any client has (``observation``), its
    honest upload as a flat ``(d,)`` vector, and its own generator."""

    round: int
    client_id: int
    parameters: Params
    buffers: Params
    own_update: Tensor
    generator: torch.Generator
    observation: ClientRound


@dataclass(frozen=True)
class OmniscientContext(ByzantineContext):
    """The context of an adversary that declares ``omniscient = True``: also the ``(k, d)``
    honest uploads of the round."""

    honest_updates: Tensor = field(default_factory=lambda: torch.zeros(0))


class ByzantineClient(Protocol):
    """Replaces a client's upload with its own choice; ``omniscient`` says whether it is
    handed the honest uploads (:class:`OmniscientContext`)."""

    omniscient: ClassVar[bool]

    def upload(self, context: ByzantineContext) -> Tensor: ...


@dataclass(frozen=True)
class PoisoningClient:
    """A ``fl.byzantine`` baseline adversary as a client."""

    adversary: Adversary
    omniscient: ClassVar[bool] = True

    def upload(self, context: ByzantineContext) -> Tensor:
        if not isinstance(context, OmniscientContext):
            raise TypeError("a poisoning baseline is omniscient: it needs an OmniscientContext")
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
