"""What the federation keeps of each round for the views, and only that.

A round's global model, uploads and aggregate are kept only when a view will need them: the
server view of a requested round, or the round records of a requested peer. Storing every round
of a long run would hold R copies of the model; the batches drawn (sample indices) are cheap and
always kept, because scoring needs the ground truth of whichever client is attacked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import Tensor, nn

from gradleak.fl.functional import Params
from gradleak.fl.views import (
    Capabilities,
    ClientUpload,
    PeerView,
    ProtocolInfo,
    RoundRecord,
    ServerView,
)


@dataclass(frozen=True)
class RecordSpec:
    """Which views a run must be able to produce afterwards."""

    server_rounds: frozenset[int] = frozenset()
    peers: frozenset[int] = frozenset()

    @classmethod
    def of(cls, server_rounds: Iterable[int] = (), peers: Iterable[int] = ()) -> RecordSpec:
        return cls(frozenset(server_rounds), frozenset(peers))


@dataclass(frozen=True)
class RoundOutcome:
    """One finished round, as the simulator produced it."""

    round: int
    parameters: Params
    buffers: Params
    next_parameters: Params
    next_buffers: Params
    uploads: tuple[ClientUpload, ...]
    start_buffers: dict[int, Params]
    aggregate: Params
    secure: bool
    total_samples: int | None


@dataclass(frozen=True)
class ViewContext:
    """The parts of every view that do not change between rounds."""

    model: nn.Module
    protocol: ProtocolInfo
    capabilities: Capabilities
    image_shape: tuple[int, int, int]
    num_classes: int


@dataclass
class ViewRecorder:
    """Builds and keeps the requested views as rounds finish."""

    spec: RecordSpec
    context: ViewContext
    server_views: dict[int, ServerView] = field(default_factory=dict)
    peer_rounds: dict[int, list[RoundRecord]] = field(default_factory=dict)

    def record(self, outcome: RoundOutcome) -> None:
        if outcome.round in self.spec.server_rounds:
            self.server_views[outcome.round] = self._server_view(outcome)
        by_client = {upload.client_id: upload for upload in outcome.uploads}
        for peer in self.spec.peers:
            own = by_client.get(peer)
            self.peer_rounds.setdefault(peer, []).append(
                RoundRecord(
                    round=outcome.round,
                    parameters=outcome.parameters,
                    buffers=outcome.start_buffers.get(peer, outcome.buffers),
                    next_parameters=outcome.next_parameters,
                    next_buffers=outcome.next_buffers,
                    own_update=own.update if own is not None else None,
                    own_num_samples=own.num_samples if own is not None else 0,
                    num_participants=len(outcome.uploads),
                    total_samples=outcome.total_samples,
                )
            )

    def _server_view(self, outcome: RoundOutcome) -> ServerView:
        ctx = self.context
        return ServerView(
            round=outcome.round,
            model=ctx.model,
            parameters=outcome.parameters,
            buffers=outcome.buffers,
            uploads=() if outcome.secure else outcome.uploads,
            aggregate=outcome.aggregate,
            protocol=ctx.protocol,
            capabilities=ctx.capabilities,
            image_shape=ctx.image_shape,
            num_classes=ctx.num_classes,
        )

    def server_view(self, round_: int) -> ServerView:
        if round_ not in self.server_views:
            raise LookupError(
                f"round {round_} was not recorded for the server; pass it in RecordSpec.server_rounds"
            )
        return self.server_views[round_]

    def peer_view(self, client_id: int, own_images: Tensor, own_labels: Tensor) -> PeerView:
        if client_id not in self.spec.peers:
            raise LookupError(f"client {client_id} was not recorded; pass it in RecordSpec.peers")
        ctx = self.context
        return PeerView(
            client_id=client_id,
            model=ctx.model,
            rounds=tuple(self.peer_rounds.get(client_id, [])),
            own_images=own_images,
            own_labels=own_labels,
            protocol=ctx.protocol,
            capabilities=ctx.capabilities,
            image_shape=ctx.image_shape,
            num_classes=ctx.num_classes,
        )
