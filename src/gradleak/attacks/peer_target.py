"""The curious client's target: its peers' mean update, read off two consecutive global models.

Every client receives w_t and w_{t+1}. With the server rule w_{t+1} = w_t − η_s·η·Σ_k p_k Δ_k
(p_k = 1/M for M participants, or n_k/n when averaging is weighted by sample counts), the
attacker a knows everything but its peers' terms, so

    Σ_{k≠a} p_k Δ_k / (1 − p_a) = ((w_t − w_{t+1})/η_s − p_a·η·Δ_a) / (η·(1 − p_a)),

the (weighted) mean pseudo-gradient of its peers. η is the rate the attacker itself trained
with; when it doubts the peers use the same, :func:`assume_local_lr` re-expresses the target for
a guess η̂, which only rescales it (and the replayed local steps). When the attacker sat the
round out, p_a = 0 and the whole aggregate belongs to its peers. Secure aggregation hides uploads from
the server, not global models from clients, so none of this changes under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

from gradleak.attacks.target import AttackTarget, UpdateModel
from gradleak.errors import ConfigError
from gradleak.fl.functional import Params
from gradleak.fl.views import PeerView, RoundRecord


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


def peers_update(record: RoundRecord, server_lr: float, local_lr: float) -> PeerAggregate:
    """Δ_peers of one round from the attacker's record (see the module docstring);
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


@dataclass(frozen=True)
class MultiRoundTarget(AttackTarget):
    """A target observed over several rounds in which the peers kept the same images.

    Its own fields are the first round's, so any attack can use it as a single target; an
    attack that understands several rounds matches one dummy batch to all of :meth:`rounds`.
    """

    later_rounds: tuple[AttackTarget, ...] = field(default_factory=tuple)

    def rounds(self) -> tuple[AttackTarget, ...]:
        return (self, *self.later_rounds)


def rounds_of(target: AttackTarget) -> tuple[AttackTarget, ...]:
    """Every round a target holds: one for a plain target."""
    return target.rounds() if isinstance(target, MultiRoundTarget) else (target,)


def peer_round_target(
    view: PeerView,
    record: RoundRecord,
    batch_size: int | None = None,
) -> AttackTarget:
    """The attack target of one round: peers' mean update, replayed by one group per peer.

    The dummy batch is peers × the public batch size (``batch_size`` overrides the latter, for
    an attacker that estimates it); its labels are never given here, because a curious peer
    cannot know its peers' labels (a threat that grants them sets them afterwards).
    """
    protocol = view.protocol
    aggregate = peers_update(record, protocol.server_lr, protocol.schedule.lr)
    per_peer = batch_size or protocol.batch_size
    return AttackTarget(
        update_model=UpdateModel(
            view.model, protocol.schedule, aggregate.num_peers, protocol.train_mode,
            protocol.clip_norm,
        ),
        parameters=record.parameters,
        buffers=record.buffers,
        observed_update=aggregate.update,
        num_images=aggregate.num_peers * per_peer,
        image_shape=view.image_shape,
        num_classes=view.num_classes,
        capabilities=view.capabilities,
        description={
            "round": record.round,
            "peers": aggregate.num_peers,
            "attacker_sampled": record.own_update is not None,
            "peer_samples": aggregate.num_samples,
        },
    )


def peer_target(view: PeerView, rounds: list[int] | None = None) -> AttackTarget:
    """The target over the chosen rounds of the view (all of them when None).

    Several rounds need the same number of peers in each (the same images behind every round);
    a single round gives a plain :class:`AttackTarget`.
    """
    by_round = {record.round: record for record in view.rounds}
    chosen = sorted(by_round) if rounds is None else rounds
    missing = [r for r in chosen if r not in by_round]
    if missing or not chosen:
        raise ConfigError(
            f"the attacker saw rounds {sorted(by_round)}, not {missing or chosen}; "
            "check threat.round and federation.rounds"
        )
    targets = [peer_round_target(view, by_round[r]) for r in chosen]
    if len(targets) == 1:
        return targets[0]
    sizes = {t.num_images for t in targets}
    if len(sizes) > 1:
        raise ConfigError(
            "the peers changed between the observed rounds (partial participation), so one "
            "dummy batch cannot stand for all of them; observe one round or let every client "
            "take part"
        )
    first = targets[0]
    description = {**first.description, "rounds": chosen}
    return MultiRoundTarget(
        **{**first.__dict__, "description": description}, later_rounds=tuple(targets[1:])
    )


TargetT = TypeVar("TargetT", bound=AttackTarget)


def _with_lr(target: TargetT, lr: float) -> TargetT:
    schedule = target.update_model.schedule
    factor = schedule.lr / lr
    return replace(
        target,
        update_model=replace(target.update_model, schedule=replace(schedule, lr=lr)),
        observed_update={k: v * factor for k, v in target.observed_update.items()},
    )


def assume_local_lr(target: AttackTarget, lr: float) -> AttackTarget:
    """The target as an attacker believing the peers' local rate is ``lr`` forms it: the model
    change it measured is fixed, so Δ_peers scales by η/η̂ and the replay steps with η̂."""
    if isinstance(target, MultiRoundTarget):
        first = _with_lr(target, lr)
        return replace(first, later_rounds=tuple(_with_lr(t, lr) for t in target.later_rounds))
    return _with_lr(target, lr)
