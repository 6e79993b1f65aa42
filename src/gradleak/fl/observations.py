"""What each party of a federation is handed, built where the data is produced.

How a round flows:

1. :class:`~gradleak.fl.simulation.Federation` samples clients, each trains on its batch and
   the client defences run; the uploads (:class:`ClientUpload`: update, sample count, updated
   buffers; never labels) are aggregated, and the round ends as a :class:`RoundOutcome` that
   keeps the rule's whole :class:`~gradleak.fl.aggregators.AggregationResult`.
2. While the round runs, each Byzantine client is handed a :class:`ClientRound` (the global
   model it received, its own batch and honest update, the other clients' labels only under
   ``knows_labels``); only adversaries that declare ``omniscient = True`` also get the honest
   uploads (``fl.adversaries``).
3. When the round ends, the :class:`ObservationRecorder` builds the requested observations
   *through the threat's* :class:`~gradleak.fl.knowledge.Capabilities`: a
   :class:`ServerObservation` per visible upload (labels, updated buffers, sample count and
   local schedule each present only when granted), and a :class:`ClientObservation` per
   recorded client (the round's two global models, its own batch and upload, granted labels).
4. ``attacks.targets`` turns observations into attack targets. Ground truth is never in an
   observation: only scoring asks :meth:`Federation.ground_truth` for it.

Observations share an :class:`ObservationContext` whose model is a copy of the federation's
module, so an attack that toggles its mode or hooks it cannot touch the running federation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from gradleak.fl.aggregators import AggregationResult
from gradleak.fl.functional import LocalSchedule, Params
from gradleak.fl.knowledge import Capabilities, KnownProtocol, ProtocolInfo

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ClientUpload:
    """One client's upload in one round: a pseudo-gradient (see ``fl.functional``), the sample
    count weighted averaging uses, and its updated buffers when the protocol averages them.
    Labels are not part of what a client sends."""

    client_id: int
    update: Params
    num_samples: int
    buffers: Params | None = None


@dataclass(frozen=True)
class RecordSpec:
    """Which observations a run must be able to hand out afterwards."""

    server_rounds: frozenset[int] = frozenset()
    peers: frozenset[int] = frozenset()

    @classmethod
    def of(cls, server_rounds: Iterable[int] = (), peers: Iterable[int] = ()) -> RecordSpec:
        return cls(frozenset(server_rounds), frozenset(peers))


@dataclass(frozen=True)
class RoundOutcome:
    """One finished round, as the simulator produced it (no labels, no images).

    ``order`` is the sampled clients in the order of the rule's rows (``aggregation``'s
    indices); ``client_buffers`` what each client's local training left in its buffers.
    """

    round: int
    parameters: Params
    buffers: Params
    next_parameters: Params
    next_buffers: Params
    uploads: tuple[ClientUpload, ...]
    start_buffers: dict[int, Params]
    client_buffers: dict[int, Params]
    aggregate: Params
    aggregation: AggregationResult
    order: tuple[int, ...]
    secure: bool
    total_samples: int | None


@dataclass(frozen=True)
class ObservationContext:
    """What every observation of one federation shares: a *copy* of the model (architecture
    for the attacker; never the federation's live module), the threat's capabilities, the
    federation's own protocol (kept here, handed out only as a :class:`KnownProtocol`), and
    the data's shape."""

    model: nn.Module
    protocol: ProtocolInfo
    capabilities: Capabilities
    image_shape: tuple[int, ...]
    num_classes: int

    @classmethod
    def of(
        cls,
        model: nn.Module,
        protocol: ProtocolInfo,
        capabilities: Capabilities,
        image_shape: tuple[int, ...],
        num_classes: int,
    ) -> ObservationContext:
        return cls(copy.deepcopy(model), protocol, capabilities, image_shape, num_classes)


@dataclass(frozen=True)
class ServerObservation:
    """What a curious server holds of one client's upload in one round.

    ``labels`` (the client's labels of the round), ``updated_buffers`` (its BatchNorm buffers
    after local training), ``num_samples`` (how many images it trained on) and
    ``protocol.schedule`` are None unless the capabilities grant them.
    """

    round: int
    client_id: int
    model: nn.Module
    parameters: Params
    buffers: Params
    update: Params
    protocol: KnownProtocol
    capabilities: Capabilities
    image_shape: tuple[int, ...]
    num_classes: int
    labels: Tensor | None
    updated_buffers: Params | None
    num_samples: int | None

    @property
    def schedule(self) -> LocalSchedule | None:
        return self.protocol.schedule


@dataclass(frozen=True)
class ClientRound:
    """What client ``client_id`` has while round ``round`` runs, before it uploads: the global
    model it received, the buffers it trained from, its own batch and honest update (None when
    not sampled), and, only under ``knows_labels``, the labels of the round's other clients
    (``granted_labels``, by client id)."""

    round: int
    client_id: int
    parameters: Params
    buffers: Params
    own_images: Tensor | None
    own_labels: Tensor | None
    own_update: Params | None
    own_num_samples: int
    granted_labels: Mapping[int, Tensor] | None


@dataclass(frozen=True)
class ClientObservation(ClientRound):
    """A finished round as the client saw it: besides its :class:`ClientRound` (with the
    upload it actually sent as ``own_update``), the next global model and what is public about
    the participants. ``num_participants`` is public (announced, or revealed by the weights);
    which clients took part is not. ``total_samples`` only when weighted averaging makes it
    public."""

    next_parameters: Params
    next_buffers: Params
    num_participants: int
    total_samples: int | None


@dataclass(frozen=True)
class ClientHistory:
    """Every recorded round of one client, with what it knows of the federation."""

    client_id: int
    model: nn.Module
    rounds: tuple[ClientObservation, ...]
    protocol: KnownProtocol
    capabilities: Capabilities
    image_shape: tuple[int, ...]
    num_classes: int

    def round(self, round_: int) -> ClientObservation:
        for observation in self.rounds:
            if observation.round == round_:
                return observation
        raise LookupError(f"client {self.client_id} recorded no round {round_}")


def granted_labels(
    capabilities: Capabilities, client: int, batches: Mapping[int, Batch]
) -> dict[int, Tensor] | None:
    """The other clients' labels of the round, when the threat grants labels; else None."""
    if not capabilities.knows_labels:
        return None
    return {k: labels for k, (_, labels) in batches.items() if k != client}


def client_round(
    context: ObservationContext,
    round_: int,
    client: int,
    parameters: Params,
    buffers: Params,
    batches: Mapping[int, Batch],
    own_update: Params | None,
    own_num_samples: int,
) -> ClientRound:
    """The :class:`ClientRound` of ``client``, with labels only as the capabilities allow."""
    own = batches.get(client)
    return ClientRound(
        round_, client, parameters, buffers,
        None if own is None else own[0], None if own is None else own[1],
        own_update, own_num_samples,
        granted_labels(context.capabilities, client, batches),
    )  # fmt: skip


@dataclass
class ObservationRecorder:
    """Builds and keeps the requested observations as rounds finish, through the capabilities.

    Only requested rounds and clients are kept: storing every round of a long run would hold
    R copies of the model.
    """

    spec: RecordSpec
    context: ObservationContext
    server: dict[int, dict[int, ServerObservation]] = field(default_factory=dict)
    clients: dict[int, list[ClientObservation]] = field(default_factory=dict)

    def record(self, outcome: RoundOutcome, batches: Mapping[int, Batch]) -> None:
        """Keep what the spec asks of ``outcome``; ``batches`` are the clients' own batches,
        handed to each client only as its own (and to others only as granted labels)."""
        if outcome.round in self.spec.server_rounds:
            self.server[outcome.round] = self._server(outcome, batches)
        by_client = {upload.client_id: upload for upload in outcome.uploads}
        for peer in self.spec.peers:
            own = by_client.get(peer)
            start = client_round(
                self.context, outcome.round, peer, outcome.parameters,
                outcome.start_buffers.get(peer, outcome.buffers), batches,
                None if own is None else own.update, 0 if own is None else own.num_samples,
            )  # fmt: skip
            self.clients.setdefault(peer, []).append(
                ClientObservation(
                    **start.__dict__,
                    next_parameters=outcome.next_parameters,
                    next_buffers=outcome.next_buffers,
                    num_participants=len(outcome.uploads),
                    total_samples=outcome.total_samples,
                )
            )

    def _server(
        self, outcome: RoundOutcome, batches: Mapping[int, Batch]
    ) -> dict[int, ServerObservation]:
        if outcome.secure:
            return {}
        ctx, caps = self.context, self.context.capabilities
        protocol = KnownProtocol.for_server(ctx.protocol, caps)
        return {
            upload.client_id: ServerObservation(
                round=outcome.round,
                client_id=upload.client_id,
                model=ctx.model,
                parameters=outcome.parameters,
                buffers=outcome.buffers,
                update=upload.update,
                protocol=protocol,
                capabilities=caps,
                image_shape=ctx.image_shape,
                num_classes=ctx.num_classes,
                labels=batches[upload.client_id][1] if caps.knows_labels else None,
                updated_buffers=(
                    outcome.client_buffers[upload.client_id] if caps.knows_buffers else None
                ),
                num_samples=len(batches[upload.client_id][1]) if caps.knows_num_samples else None,
            )
            for upload in outcome.uploads
        }

    def server_observation(self, round_: int, client: int) -> ServerObservation:
        if round_ not in self.server:
            raise LookupError(
                f"round {round_} was not recorded for the server; pass it in RecordSpec.server_rounds"
            )
        if client not in self.server[round_]:
            raise LookupError(
                f"client {client} sent no upload the server can see in round {round_}"
            )
        return self.server[round_][client]

    def client_history(self, client: int) -> ClientHistory:
        if client not in self.spec.peers:
            raise LookupError(f"client {client} was not recorded; pass it in RecordSpec.peers")
        ctx = self.context
        return ClientHistory(
            client, ctx.model, tuple(self.clients.get(client, [])),
            KnownProtocol.for_client(ctx.protocol), ctx.capabilities, ctx.image_shape,
            ctx.num_classes,
        )  # fmt: skip
