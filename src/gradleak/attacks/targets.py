"""The one place observations become attack targets.

- :func:`from_upload`: a curious server's target, from its observation of one upload.
- :func:`from_global_models`: a curious client's, its peers' mean update read off consecutive
  global models (below).
- :func:`from_revealed`: a malicious client's, what its uploads made a robust rule expose.
- :meth:`~gradleak.attacks.target.MultiRoundTarget.of`: several rounds matched jointly.

Every field of a target comes from an observation, so a target holds nothing the threat did
not grant; labels in particular are the observation's granted ones, never the ground truth.

The peers' update. Every client receives w_t and w_{t+1}. With the server rule
w_{t+1} = w_t − η_s·η·Σ_k p_k Δ_k (p_k = 1/M for M participants, or n_k/n when averaging is
weighted by sample counts), the attacker a knows everything but its peers' terms, so

    Σ_{k≠a} p_k Δ_k / (1 − p_a) = ((w_t − w_{t+1})/η_s − p_a·η·Δ_a) / (η·(1 − p_a)),

the (weighted) mean pseudo-gradient of its peers. η is the rate the attacker itself trained
with; when it doubts the peers use the same, :func:`~gradleak.attacks.target.assume_local_lr`
re-expresses the target for a guess η̂. When the attacker sat the round out, p_a = 0 and the
whole aggregate belongs to its peers. Secure aggregation hides uploads from the server, not
global models from clients, so none of this changes under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.attacks.rule_replay import RuleReplay
from gradleak.attacks.target import AttackTarget, MultiRoundTarget, UpdateModel
from gradleak.errors import CapabilityError, ConfigError
from gradleak.fl.aggregators import Aggregator
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, Params
from gradleak.fl.observations import ClientHistory, ClientObservation, ServerObservation


def require_server_knowledge(protocol: str, knows_schedule: bool, knows_count: bool) -> None:
    """What a server target cannot do without: the sample count (every attack sizes its dummy
    batch from it) and, except under FedSGD, the local schedule (FedAvg's replay needs it).
    Checked on the config before any work, and again on the observation itself."""
    if not knows_count:
        raise CapabilityError(
            "the server does not know how many images the client trained on (threat."
            "knows_num_samples=false), and every attack sizes its dummy batch from it: set "
            "threat.knows_num_samples=true"
        )
    if not knows_schedule and protocol != "fedsgd":
        raise CapabilityError(
            "the server does not know the clients' local schedule (threat.knows_local_hparams="
            "false), and replaying FedAvg's local steps needs it: set threat.knows_local_hparams="
            "true or use federation.protocol=fedsgd"
        )


def server_schedule(observation: ServerObservation) -> LocalSchedule:
    """The local schedule the server replays. Without ``knows_local_hparams`` only FedSGD can
    be replayed: its pseudo-gradient is the gradient whatever the rate, so one step at rate 1."""
    return observation.schedule or LocalSchedule(1, 1.0, None, 0.0)


def from_upload(observation: ServerObservation) -> AttackTarget:
    """The target a curious server forms from one client's visible upload."""
    protocol = observation.protocol
    require_server_knowledge(
        protocol.protocol, observation.schedule is not None, observation.num_samples is not None
    )
    assert observation.num_samples is not None
    return AttackTarget(
        update_model=UpdateModel(
            observation.model, server_schedule(observation), 1, protocol.train_mode
        ),
        parameters=observation.parameters,
        buffers=observation.buffers,
        observed_update=observation.update,
        num_images=observation.num_samples,
        image_shape=observation.image_shape,
        num_classes=observation.num_classes,
        capabilities=observation.capabilities,
        labels=observation.labels,
        description={"victim": observation.client_id, "round": observation.round},
        observed_buffers=observation.updated_buffers,
    )


@dataclass(frozen=True)
class PeerAggregate:
    """The peers' share of one round, as far as the attacker can tell.

    ``num_samples`` is how many images the peers trained on, when weighted averaging makes it
    public; otherwise the attacker estimates it from the protocol (peers × batch size).
    """

    round: int
    update: Params
    num_peers: int
    num_samples: int | None


def peers_update(record: ClientObservation, server_lr: float, local_lr: float) -> PeerAggregate:
    """Δ_peers of one round from the attacker's observation (see the module docstring);
    ``local_lr`` is the protocol's local rate, which the attacker trained with itself."""
    sampled = record.own_update is not None
    peers = record.num_participants - int(sampled)
    if peers < 1:
        raise ConfigError(
            f"round {record.round}: the attacker was the only participant, so there is no peer "
            "update to attack (raise federation.clients_per_round or pick another round)"
        )
    weighted = record.total_samples is not None
    if not sampled:
        own_share = 0.0
    elif weighted:
        own_share = record.own_num_samples / float(record.total_samples)  # type: ignore[arg-type]
    else:
        own_share = 1.0 / record.num_participants
    update: Params = {}
    for name, before in record.parameters.items():
        model_delta = (before - record.next_parameters[name]) / server_lr
        if record.own_update is not None:
            model_delta = model_delta - own_share * local_lr * record.own_update[name]
        update[name] = model_delta / (local_lr * (1.0 - own_share))
    samples = None
    if weighted:
        samples = int(record.total_samples) - (record.own_num_samples if sampled else 0)  # type: ignore[arg-type]
    return PeerAggregate(record.round, update, peers, samples)


def granted_labels_of(record: ClientObservation, clients: Sequence[int]) -> Tensor | None:
    """The labels of ``clients`` (in that order) the observation grants, or None."""
    if record.granted_labels is None:
        return None
    return torch.cat([record.granted_labels[k] for k in clients])


def client_schedule(history: ClientHistory) -> LocalSchedule:
    schedule = history.protocol.schedule
    assert schedule is not None, "a client always knows the schedule it trains by"
    return schedule


def peer_round_target(
    history: ClientHistory, record: ClientObservation, batch_size: int | None = None
) -> AttackTarget:
    """The attack target of one round: peers' mean update, replayed by one group per peer.

    The dummy batch is peers × the public batch size (``batch_size`` overrides the latter, for
    an attacker that estimates it); its labels are the peers' (by client id) when granted.
    """
    protocol, schedule = history.protocol, client_schedule(history)
    aggregate = peers_update(record, protocol.server_lr, schedule.lr)
    per_peer = batch_size or protocol.batch_size or 0
    peers = sorted(k for k in record.granted_labels or {})
    return AttackTarget(
        update_model=UpdateModel(
            history.model, schedule, aggregate.num_peers, protocol.train_mode, protocol.clip_norm
        ),
        parameters=record.parameters,
        buffers=record.buffers,
        observed_update=aggregate.update,
        num_images=aggregate.num_peers * per_peer,
        image_shape=history.image_shape,
        num_classes=history.num_classes,
        capabilities=history.capabilities,
        labels=granted_labels_of(record, peers),
        description={
            "round": record.round,
            "peers": aggregate.num_peers,
            "attacker_sampled": record.own_update is not None,
            "peer_samples": aggregate.num_samples,
        },
    )


def from_global_models(history: ClientHistory, rounds: list[int] | None = None) -> AttackTarget:
    """A curious client's target over the chosen rounds of its history (all when None).

    Several rounds need the same number of peers in each (the same images behind every round);
    a single round gives a plain :class:`AttackTarget`.
    """
    by_round = {record.round: record for record in history.rounds}
    chosen = sorted(by_round) if rounds is None else rounds
    missing = [r for r in chosen if r not in by_round]
    if missing or not chosen:
        raise ConfigError(
            f"the attacker saw rounds {sorted(by_round)}, not {missing or chosen}; "
            "check threat.round and federation.rounds"
        )
    targets = [peer_round_target(history, by_round[r]) for r in chosen]
    if len({t.num_images for t in targets}) > 1:
        raise ConfigError(
            "the peers changed between the observed rounds (partial participation), so one "
            "dummy batch cannot stand for all of them; observe one round or let every client "
            "take part"
        )
    return MultiRoundTarget.of(targets, **({"rounds": chosen} if len(targets) > 1 else {}))


@dataclass(frozen=True)
class Exposure:
    """What one round's aggregate exposed, in the malicious attacker's belief (flat ``(d,)``):
    ``update`` is the mean of ``groups`` honest peers' updates or, with ``rule``, ``rule``
    applied to them stacked above the attacker's own ``uploads``; ``clients`` are the clients
    it claims (victim first), whose labels a ``knows_labels`` threat grants."""

    update: Tensor
    groups: int
    clients: tuple[int, ...]
    rule: Aggregator | None = None
    uploads: Tensor | None = None


def from_revealed(history: ClientHistory, exposures: dict[int, Exposure]) -> AttackTarget:
    """A malicious client's target: each round's exposed update, replayed with the rule."""
    protocol, schedule = history.protocol, client_schedule(history)
    targets = []
    for t, exposure in exposures.items():
        record = history.round(t)
        replay = RuleReplay(
            history.model, schedule, exposure.groups, protocol.train_mode, protocol.clip_norm,
            exposure.rule, exposure.uploads,
        )  # fmt: skip
        targets.append(
            AttackTarget(
                update_model=replay,
                parameters=record.parameters,
                buffers=record.buffers,
                observed_update=ParamLayout.of(record.parameters).unflatten(exposure.update),
                num_images=exposure.groups * (protocol.batch_size or 0),
                image_shape=history.image_shape,
                num_classes=history.num_classes,
                capabilities=history.capabilities,
                labels=granted_labels_of(record, exposure.clients),
                description={"round": t, "exposed_groups": exposure.groups},
            )
        )
    return MultiRoundTarget.of(targets)
