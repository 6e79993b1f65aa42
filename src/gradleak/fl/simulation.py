"""The federation: rounds of client sampling, local training, client defences and aggregation.

One :class:`Federation` is the single simulator behind ``gradleak train`` and every threat:
attacks point at any client in any round through the observations it records
(``fl.observations``, which also says how a round flows).
Every random choice (which clients, which batch, defence and DP noise) comes from a generator
derived from ``(seed, purpose, round, client)``, so a run is reproducible and a client's batch
does not change when, say, another client's defence changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from gradleak.data.base import ImageDataset
from gradleak.errors import ConfigError
from gradleak.fl.adversaries import ByzantineClient, ByzantineContext, OmniscientContext
from gradleak.fl.aggregators import AggregationResult, Aggregator
from gradleak.fl.defenses import ClientDefensePipeline
from gradleak.fl.executors import ClientJob, Executor
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import Params, forward, split_state
from gradleak.fl.knowledge import ProtocolInfo
from gradleak.fl.observations import (
    Batch,
    ClientHistory,
    ClientUpload,
    ObservationContext,
    ObservationRecorder,
    RecordSpec,
    RoundOutcome,
    ServerObservation,
    client_round,
)
from gradleak.fl.secure_aggregation import mask_updates

PURPOSES = {"sample": 0, "batch": 1, "train": 2, "defense": 3, "byzantine": 4, "secure": 5}


def derived_generator(seed: int, purpose: str, round_: int, client: int = 0) -> torch.Generator:
    """An independent, reproducible generator for one random choice of the simulation."""
    state = np.random.SeedSequence([seed, PURPOSES[purpose], round_, client]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def check_sampling(protocol: ProtocolInfo) -> None:
    """A round cannot sample more clients than the federation has."""
    if protocol.clients_per_round > protocol.num_clients:
        raise ConfigError(
            f"federation.clients_per_round={protocol.clients_per_round} exceeds "
            f"federation.num_clients={protocol.num_clients}"
        )


@dataclass(frozen=True)
class FederationRules:
    """How rounds run, beside the model and the data."""

    protocol: ProtocolInfo
    aggregator: Aggregator
    executor: Executor
    defenses: ClientDefensePipeline
    byzantine: Mapping[int, ByzantineClient]
    secure_aggregation: bool = False
    weighted: bool = True
    average_buffers: bool = True
    seed: int = 0
    round_offset: int = 0


class Federation:
    """N clients holding ``parts`` of ``data``, training ``model`` under ``rules``.

    ``round`` counts from ``-pretrain_rounds`` (``rules.round_offset``): rounds before 0 train
    the starting model, and observations exist only for rounds >= 0.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ImageDataset,
        parts: list[Tensor],
        rules: FederationRules,
        context: ObservationContext,
        record: RecordSpec = RecordSpec(),
    ) -> None:
        protocol = rules.protocol
        check_sampling(protocol)
        if rules.secure_aggregation and protocol.aggregator != "mean":
            raise ConfigError(
                "secure aggregation shows the server only the sum of the uploads, so only "
                f"defense.aggregator.name=mean can run on it, not {protocol.aggregator!r}"
            )
        if context.model is model:
            raise ValueError(
                "observations must hold a copy of the model, never the federation's own module "
                "(build the context with ObservationContext.of)"
            )
        self.model, self.data, self.parts, self.rules = model, data, parts, rules
        self.device = next(model.parameters()).device
        self.parameters, self.buffers = split_state(model)
        self.layout = ParamLayout.of(self.parameters)
        self.local_buffers: dict[int, Params] = {}
        self.round = -rules.round_offset
        self.batches: dict[int, dict[int, Tensor]] = {}
        self.recorder = ObservationRecorder(record, context)

    def sample_clients(self, round_: int) -> list[int]:
        """The clients taking part in ``round_`` (sorted), a seeded draw without replacement."""
        protocol = self.rules.protocol
        generator = self._generator("sample", round_)
        order = torch.randperm(protocol.num_clients, generator=generator)
        return sorted(order[: protocol.clients_per_round].tolist())

    def draw_batch(self, round_: int, client: int) -> Tensor:
        """The sample indices client ``client`` trains on in ``round_``."""
        part = self.parts[client]
        order = torch.randperm(len(part), generator=self._generator("batch", round_, client))
        return part[order[: self.rules.protocol.batch_size]]

    def ground_truth(self, round_: int, clients: list[int]) -> Batch:
        """For scoring only: the images and labels ``clients`` trained on in ``round_``, one
        client after another. No observation is built from this; attacks never see it."""
        chosen = []
        for client in clients:
            indices = self.batches.get(round_, {}).get(client)
            if indices is None:
                raise LookupError(f"client {client} did not train in round {round_}")
            chosen.append(indices)
        indices = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)
        return self.data.images[indices], self.data.labels[indices]

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            self.run_round()

    def run_until(self, round_: int) -> None:
        """Run rounds until ``round_`` is the next round to run."""
        self.run(max(0, round_ - self.round))

    def run_round(self) -> RoundOutcome:
        t, rules = self.round, self.rules
        sampled = self.sample_clients(t)
        indices = {k: self.draw_batch(t, k) for k in sampled}
        self.batches[t] = indices
        start_buffers = {k: self.local_buffers.get(k, self.buffers) for k in sampled}
        batches: dict[int, Batch] = {
            k: (
                self.data.images[indices[k]].to(self.device),
                self.data.labels[indices[k]].to(self.device),
            )
            for k in sampled
        }
        jobs = [
            ClientJob(*batches[k], start_buffers[k], self._generator("train", t, k))
            for k in sampled
        ]
        self.model.train(rules.protocol.train_mode)
        trained = rules.executor(self.model, self.parameters, jobs, rules.protocol.schedule)
        flat = {
            k: rules.defenses(self.layout.flatten(update), self._generator("defense", t, k))
            for k, (update, _) in zip(sampled, trained, strict=True)
        }
        self._replace_byzantine_uploads(t, flat, start_buffers, batches)
        counts = torch.tensor([float(len(self.parts[k])) for k in sampled], device=self.device)
        stacked = torch.stack([flat[k] for k in sampled])
        aggregation = self._aggregate(stacked, counts, t)
        step = rules.protocol.server_lr * rules.protocol.schedule.lr
        aggregate_params = self.layout.unflatten(aggregation.aggregate)
        next_params = {k: v - step * aggregate_params[k] for k, v in self.parameters.items()}
        client_buffers = {k: new for k, (_, new) in zip(sampled, trained, strict=True)}
        next_buffers = self._next_buffers(client_buffers, counts)
        uploads = tuple(
            ClientUpload(
                k,
                self.layout.unflatten(flat[k]),
                len(self.parts[k]),
                client_buffers[k] if rules.average_buffers else None,
            )
            for k in sampled
        )
        outcome = RoundOutcome(
            t, self.parameters, self.buffers, next_params, next_buffers, uploads,
            start_buffers, client_buffers, aggregate_params, aggregation, tuple(sampled),
            rules.secure_aggregation, int(counts.sum()) if rules.weighted else None,
        )  # fmt: skip
        if t >= 0:
            self.recorder.record(outcome, batches)
        self.parameters, self.buffers = next_params, next_buffers
        self.round += 1
        return outcome

    def _replace_byzantine_uploads(
        self,
        round_: int,
        flat: dict[int, Tensor],
        start_buffers: dict[int, Params],
        batches: dict[int, Batch],
    ) -> None:
        """Byzantine clients swap their honest upload for their own. Each is handed what a
        client has; only an omniscient one (``omniscient = True``) also the honest uploads."""
        byzantine = self.rules.byzantine
        any_upload = next(iter(flat.values()))
        honest = [flat[k] for k in flat if k not in byzantine]
        for k in [k for k in flat if k in byzantine]:
            observation = client_round(
                self.recorder.context, round_, k, self.parameters, start_buffers[k], batches,
                self.layout.unflatten(flat[k]), len(self.parts[k]),
            )  # fmt: skip
            args = (round_, k, self.parameters, start_buffers[k], flat[k],
                    self._generator("byzantine", round_, k), observation)  # fmt: skip
            context: ByzantineContext
            if byzantine[k].omniscient:
                honest_stack = (
                    torch.stack(honest) if honest else any_upload.new_zeros((0, any_upload.numel()))
                )
                context = OmniscientContext(*args, honest_updates=honest_stack)
            else:
                context = ByzantineContext(*args)
            flat[k] = byzantine[k].upload(context).to(any_upload.dtype)

    def _aggregate(self, stacked: Tensor, counts: Tensor, round_: int) -> AggregationResult:
        """The rule's whole result (its decisions are kept for scoring). Under secure
        aggregation the server computes the weighted mean of masked uploads; its result records
        the mean's (public) weights."""
        weights = counts if self.rules.weighted else torch.ones_like(counts)
        if self.rules.secure_aggregation:
            seed = int(self._generator("secure", round_).initial_seed())
            masked = mask_updates(stacked * weights[:, None], seed)
            share = (weights / weights.sum()).to(stacked.dtype)
            return AggregationResult((masked.sum(dim=0) / weights.sum()).to(stacked.dtype), share,
                                     weights=share)  # fmt: skip
        return self.rules.aggregator(stacked, weights if self.rules.weighted else None)

    def _next_buffers(self, client_buffers: dict[int, Params], counts: Tensor) -> Params:
        """Averaged buffers become global; local ones stay with their clients."""
        if not self.rules.average_buffers:
            self.local_buffers.update(client_buffers)
            return self.buffers
        return average_buffers(list(client_buffers.values()), counts)

    def evaluation_buffers(self) -> Params:
        """Buffers to evaluate the global model with: under local BatchNorm statistics, the
        sample-weighted mean of every client's own (a simulation-only view)."""
        if self.rules.average_buffers or not self.buffers:
            return self.buffers
        states = [self.local_buffers.get(k, self.buffers) for k in range(len(self.parts))]
        counts = torch.tensor([float(len(p)) for p in self.parts], device=self.device)
        return average_buffers(states, counts)

    @torch.no_grad()
    def evaluate(self, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
        """Top-1 accuracy of the global model (eval mode) on ``images``."""
        self.model.eval()
        buffers = self.evaluation_buffers()
        correct = 0
        for start in range(0, len(labels), batch_size):
            x = images[start : start + batch_size].to(self.device)
            y = labels[start : start + batch_size].to(self.device)
            correct += int((forward(self.model, self.parameters, buffers, x).argmax(-1) == y).sum())
        self.model.train(self.rules.protocol.train_mode)
        return correct / max(1, len(labels))

    def server_observation(self, round_: int, client: int) -> ServerObservation:
        """What the server holds of ``client``'s upload in ``round_`` (recorded rounds only)."""
        return self.recorder.server_observation(round_, client)

    def client_history(self, client: int) -> ClientHistory:
        """What recorded client ``client`` saw over the rounds it lived through."""
        return self.recorder.client_history(client)

    def _generator(self, purpose: str, round_: int, client: int = 0) -> torch.Generator:
        return derived_generator(self.rules.seed, purpose, round_ + self.rules.round_offset, client)


def average_buffers(states: list[Params], counts: Tensor) -> Params:
    """Sample-weighted mean of float buffers; counters (``num_batches_tracked``) take the max."""
    if not states or not states[0]:
        return dict(states[0]) if states else {}
    weights = counts / counts.sum()
    out: Params = {}
    for name, first in states[0].items():
        stacked = torch.stack([s[name] for s in states])
        if first.is_floating_point():
            out[name] = torch.einsum("n,n...->...", weights.to(first.dtype), stacked)
        else:
            out[name] = stacked.max(dim=0).values
    return out
