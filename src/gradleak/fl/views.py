"""What each party of a federation may see.

Attacks receive a view, never the ground truth: the true images travel separately to scoring.
What the attacker knows beyond the protocol is data (:class:`Capabilities`), checked against
what an attack requires.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import Tensor, nn

from gradleak.fl.functional import LocalSchedule, Params


@dataclass(frozen=True)
class Capabilities:
    """What the attacker knows or can do, beyond the model and the protocol."""

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
    """The federation's public parameters, known to every client and to the server."""

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
class ClientUpload:
    """One client's upload in one round: a pseudo-gradient (see ``fl.functional``)."""

    client_id: int
    update: Params
    num_samples: int
    labels: Tensor | None = None
    buffers: Params | None = None


@dataclass(frozen=True)
class ServerView:
    """What the server sees in one round: the global model it sent and each upload (none under
    secure aggregation, where only ``aggregate`` is visible)."""

    round: int
    model: nn.Module
    parameters: Params
    buffers: Params
    uploads: tuple[ClientUpload, ...]
    aggregate: Params | None
    protocol: ProtocolInfo
    capabilities: Capabilities
    image_shape: tuple[int, int, int]
    num_classes: int

    def upload_of(self, client_id: int) -> ClientUpload:
        for upload in self.uploads:
            if upload.client_id == client_id:
                return upload
        raise LookupError(f"client {client_id} sent no visible upload in round {self.round}")


@dataclass(frozen=True)
class RoundRecord:
    """One round as a client sees it: the global model it received at the start, the next
    global model, and what it knows about who took part.

    ``own_update`` is None when this client was not sampled. ``num_participants`` is public in
    the protocol (the server announces it, or the aggregation weights reveal it); which clients
    took part is not. ``total_samples`` is set only when weighted averaging makes it public.
    """

    round: int
    parameters: Params
    buffers: Params
    next_parameters: Params
    next_buffers: Params
    own_update: Params | None
    own_num_samples: int
    num_participants: int
    total_samples: int | None = None


@dataclass(frozen=True)
class PeerView:
    """What client ``client_id`` sees over the rounds it lived through: the consecutive global
    models, its own data and uploads, and the protocol's public parameters.

    Secure aggregation hides individual uploads from the server but not the global models from
    the clients, so a peer's view is the same with or without it.
    """

    client_id: int
    model: nn.Module
    rounds: tuple[RoundRecord, ...]
    own_images: Tensor
    own_labels: Tensor
    protocol: ProtocolInfo
    capabilities: Capabilities
    image_shape: tuple[int, int, int]
    num_classes: int
