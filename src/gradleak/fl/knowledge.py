"""What a party knows beyond its own data: the public protocol and the threat's grants.

:class:`ProtocolInfo` is the federation's own, complete description of how rounds run.
:class:`Capabilities` is what a threat grants its attacker beyond that, and
:class:`KnownProtocol` is the protocol *as that attacker knows it*: the local schedule and the
batch size are in it only when the capabilities grant them. Observations
(``fl.observations``) carry a :class:`KnownProtocol`, never the federation's
:class:`ProtocolInfo`, so what is withheld is absent rather than merely unread.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from gradleak.fl.functional import LocalSchedule


@dataclass(frozen=True)
class Capabilities:
    """What the attacker knows or can do, beyond the model and the protocol's public part.

    Every flag changes what the federation hands over (``fl.observations``):

    - ``knows_labels``: the attacked clients' labels of the round.
    - ``knows_buffers``: the attacked client's *updated* BatchNorm buffers after its local
      training (breaching's ``provide_buffers``); the global buffers every party has anyway.
    - ``knows_local_hparams``: the local schedule (steps, rate, minibatch, momentum) the
      server prescribed; without it a server observation has ``schedule=None``.
    - ``knows_num_samples``: how many images the client trained on (its sample count and the
      round's batch size); without it a server observation has ``None`` for both.
    - ``sees_individual_updates``: false under secure aggregation (no per-client upload).
    - ``may_send_arbitrary_updates``: the attacker is a client that uploads what it likes.

    A client is told the schedule and the batch size by the protocol itself (it trains by
    them), so ``knows_local_hparams`` and ``knows_num_samples`` restrict only the server.
    """

    knows_labels: bool = False
    knows_buffers: bool = False
    knows_local_hparams: bool = True
    knows_num_samples: bool = True
    sees_individual_updates: bool = True
    may_send_arbitrary_updates: bool = False

    def missing(self, required: frozenset[str]) -> list[str]:
        known = {f.name for f in fields(self)}
        unknown = required - known
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}")
        return sorted(name for name in required if not getattr(self, name))


@dataclass(frozen=True)
class ProtocolInfo:
    """The federation's parameters, as the federation itself runs them."""

    protocol: str
    num_clients: int
    clients_per_round: int
    batch_size: int
    schedule: LocalSchedule
    server_lr: float
    aggregator: str
    train_mode: bool = True
    clip_norm: float | None = None
    """Client-side DP's clipping norm, which every client applies to its own upload (None
    without client DP): a peer's replay of the others' training clips as they do."""


@dataclass(frozen=True)
class KnownProtocol:
    """The protocol as one party knows it: ``schedule`` and ``batch_size`` are None when the
    capabilities withhold them (see :class:`Capabilities`)."""

    protocol: str
    num_clients: int
    clients_per_round: int
    server_lr: float
    aggregator: str
    train_mode: bool
    clip_norm: float | None
    schedule: LocalSchedule | None
    batch_size: int | None

    @classmethod
    def for_server(cls, protocol: ProtocolInfo, capabilities: Capabilities) -> KnownProtocol:
        """What a server attacker knows: the schedule and batch size only when granted."""
        return cls._of(
            protocol,
            protocol.schedule if capabilities.knows_local_hparams else None,
            protocol.batch_size if capabilities.knows_num_samples else None,
        )

    @classmethod
    def for_client(cls, protocol: ProtocolInfo) -> KnownProtocol:
        """What a client knows: all of it, since it trains by the schedule and batch size."""
        return cls._of(protocol, protocol.schedule, protocol.batch_size)

    @classmethod
    def _of(
        cls, protocol: ProtocolInfo, schedule: LocalSchedule | None, batch_size: int | None
    ) -> KnownProtocol:
        return cls(
            protocol.protocol,
            protocol.num_clients,
            protocol.clients_per_round,
            protocol.server_lr,
            protocol.aggregator,
            protocol.train_mode,
            protocol.clip_norm,
            schedule,
            batch_size,
        )
