"""The maliciously curious client inside the federation: a Byzantine client that uploads to see.

It takes its colluders' places in :class:`~gradleak.fl.simulation.Federation` (one object for
all f of them, so that they act on one plan). Before the attacked rounds it behaves honestly;
from ``first_round`` on it builds its :class:`~gradleak.malicious.strategies.Estimate` of the
honest updates from what a client has (its own data, the victim's labels when the threat
grants them, the aggregates of past rounds) and uploads the strategy's plan. It never reads
``ByzantineContext.honest_updates``: that omniscience belongs to the poisoning baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gradleak.attacks.labels import recover_labels
from gradleak.fl.adversaries import ByzantineContext
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, Params, local_update
from gradleak.fl.views import RoundRecord
from gradleak.malicious.replay import RuleReplay
from gradleak.malicious.strategies import Estimate, Plan, Revealed, RuleShape, Strategy
from gradleak.metrics.labels import label_accuracy

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ClientDP:
    """Client-side DP every honest client applies (public protocol): clip to ``clip_norm``,
    add Gaussian noise of std ``noise_std`` per coordinate."""

    clip_norm: float
    noise_std: float


@dataclass
class MaliciousClient:
    """Colluding clients ``clients`` that upload ``strategy``'s plan from ``first_round`` on.

    ``own_batch(t)`` is the lead attacker's own batch of round t; ``victim_labels(t)`` the
    victim's labels when the threat grants them (None otherwise). Under ``dp`` the attacker
    works on the clipping sphere: its estimates are clipped like honest updates, and its
    uploads are clipped to the common norm and noised like theirs (a noise-free upload is
    closer to everyone than honest ones are to each other, so Krum would pick it).
    """

    clients: tuple[int, ...]
    strategy: Strategy
    rule: RuleShape
    model: nn.Module
    schedule: LocalSchedule
    server_lr: float
    first_round: int
    own_batch: Callable[[int], Batch]
    victim_labels: Callable[[int], Tensor | None]
    dp: ClientDP | None = None
    train_mode: bool = True
    plans: dict[int, Plan] = field(default_factory=dict)
    models_seen: dict[int, Params] = field(default_factory=dict)
    dummy: Tensor | None = None

    def upload(self, context: ByzantineContext) -> Tensor:
        t = context.round
        if t < self.first_round:
            return context.own_update
        if t not in self.plans:
            self.models_seen[t] = context.parameters
            self.plans[t] = self._plan(context)
        return self.plans[t].uploads[self.clients.index(context.client_id)]

    def revealed(self, record: RoundRecord) -> Revealed:
        """What round ``record.round``'s aggregate exposed, read off the two global models."""
        layout = ParamLayout.of(record.parameters)
        step = self.server_lr * self.schedule.lr
        aggregate = (layout.flatten(record.parameters) - layout.flatten(record.next_parameters)) / step
        return self.strategy.reveal(self.rule, aggregate, self.plans[record.round])

    def victim_exposed(self, record: RoundRecord) -> bool | None:
        """Whether round ``record.round`` exposed the victim's update alone, as the attacker
        can tell: the exposed update is one client's, and the labels counted from its last
        layer are the victim's (which the threat grants), all of them. None when
        the rule does not expose one client or the victim's labels are unknown."""
        revealed = self.revealed(record)
        victim_labels = self.victim_labels(record.round)
        if revealed.groups != 1 or revealed.rule is not None or victim_labels is None:
            return None
        layout = ParamLayout.of(record.parameters)
        counted = recover_labels(
            self.model, record.parameters, record.buffers, layout.unflatten(revealed.update),
            len(victim_labels), tuple(self.own_batch(record.round)[0].shape[1:]),  # type: ignore[arg-type]
            self.schedule.gradient_multiplicity(),
        )
        return label_accuracy(counted.cpu(), victim_labels.cpu()) == 1.0

    def _plan(self, context: ByzantineContext) -> Plan:
        estimate = self._estimate(context)
        plan = self.strategy.plan(self.rule, estimate, context.generator)
        if self.dp is None:
            return plan
        clipped = torch.stack([clip_to_norm(row, self.dp.clip_norm) for row in plan.uploads])
        noise = torch.randn(clipped.shape, generator=context.generator, dtype=clipped.dtype)
        return Plan(clipped + self.dp.noise_std * noise.to(clipped.device))

    def _estimate(self, context: ByzantineContext) -> Estimate:
        """Centre: the own update. Spread: of single-image updates, shrunk by sqrt(B) (plus DP
        noise). Victim: last round's exposed update when it was one client's, else the own
        images relabelled with the victim's labels, else the centre."""
        images, labels = self.own_batch(context.round)
        layout = ParamLayout.of(context.parameters)

        def update(x: Tensor, y: Tensor) -> Tensor:
            delta, _ = local_update(self.model, context.parameters, context.buffers, x, y, self.schedule)
            flat = layout.flatten(delta)
            return flat if self.dp is None else clip_to_norm(flat, self.dp.clip_norm)

        centre = update(images, labels)
        singles = torch.stack([update(images[i : i + 1], labels[i : i + 1]) for i in range(len(labels))])
        spread = singles.std(dim=0, correction=0) / len(labels) ** 0.5
        if self.dp is not None:
            spread = (spread.square() + self.dp.noise_std**2).sqrt()
        victim = self._tracked(context.round, layout)
        victim_labels = self.victim_labels(context.round)
        steps = getattr(self.strategy, "inversion_steps", 0)
        if steps > 0 and victim is None and context.round - 1 in self.plans:
            dummy = self._invert(context, layout, steps)
            victim = update(dummy, labels if victim_labels is None else victim_labels)
        if victim is None:
            victim = centre if victim_labels is None else update(images, victim_labels)
        return Estimate(victim, centre, spread)

    def _invert(self, context: ByzantineContext, layout: ParamLayout, steps: int) -> Tensor:
        """Joint strategy, step (a): ``steps`` Adam steps on the dummy batch (the victim's group
        first) against what last round's aggregate revealed, replayed with the rule; returns
        the victim group's dummy images. Starts from the own images."""
        previous, images = context.round - 1, self.own_batch(context.round)[0]
        record = RoundRecord(previous, self.models_seen[previous], {}, self.models_seen[context.round], {},
                             None, 0, self.rule.num_clients)
        revealed = self.revealed(record)
        own_labels = self.own_batch(previous)[1]
        victim_labels = self.victim_labels(previous)
        labels = torch.cat([own_labels if victim_labels is None else victim_labels,
                            *[own_labels] * (revealed.groups - 1)])
        if self.dummy is None or self.dummy.shape[0] != len(labels):
            self.dummy = images.repeat(revealed.groups, 1, 1, 1)
        replay = RuleReplay(self.model, self.schedule, revealed.groups, self.train_mode,
                            None if self.dp is None else self.dp.clip_norm, revealed.rule, revealed.uploads)
        dummy = self.dummy.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([dummy], lr=getattr(self.strategy, "inversion_lr", 0.05))
        for _ in range(steps):
            predicted = layout.flatten(replay(record.parameters, context.buffers, dummy, labels))
            loss = (predicted - revealed.update).square().sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                dummy.clamp_(0.0, 1.0)
        self.dummy = dummy.detach()
        return self.dummy[: len(own_labels)]

    def _tracked(self, round_: int, layout: ParamLayout) -> Tensor | None:
        """Last round's exposed update, when the attacker believes it was the victim's alone."""
        previous = round_ - 1
        if previous not in self.plans or round_ not in self.models_seen:
            return None
        record = RoundRecord(previous, self.models_seen[previous], {}, self.models_seen[round_], {},
                             None, 0, self.rule.num_clients)
        revealed = self.revealed(record)
        return revealed.update if revealed.groups == 1 and revealed.rule is None else None
