"""The maliciously curious client inside the federation: a Byzantine client that uploads to see.

It takes its colluders' places in :class:`~gradleak.fl.simulation.Federation` (one object for
all f of them, so that they act on one plan). It is an ordinary, *non-omniscient* client: each
round it is handed a :class:`~gradleak.fl.adversaries.ByzantineContext`, whose
:class:`~gradleak.fl.observations.ClientRound` holds its own batch and, only when the threat
grants labels, the other clients' labels; there is no field for the honest uploads. Before the
attacked rounds it behaves honestly; from ``first_round`` on it builds its
:class:`~gradleak.fl.malicious.strategies.Estimate` of the honest updates from what it has (its
own data, the victim's labels when granted, the global models of past rounds) and uploads the
strategy's plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from gradleak.fl.adversaries import ByzantineContext
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, Params, local_update
from gradleak.fl.malicious.strategies import Estimate, Plan, Revealed, RuleShape, Strategy
from gradleak.fl.observations import ClientRound
from gradleak.fl.replay import combine, group_updates


@dataclass(frozen=True)
class ClientDP:
    """Client-side DP every honest client applies (public protocol): clip to ``clip_norm``,
    add Gaussian noise of std ``noise_std`` per coordinate."""

    clip_norm: float
    noise_std: float


@dataclass
class MaliciousClient:
    """Colluding clients ``clients`` that upload ``strategy``'s plan from ``first_round`` on,
    aimed at ``victim``.

    ``model`` is the client's own copy of the architecture. Under ``dp`` the attacker works on
    the clipping sphere: its estimates are clipped like honest updates, and its uploads are
    clipped to the common norm and noised like theirs (a noise-free upload is closer to
    everyone than honest ones are to each other, so Krum would pick it).
    """

    omniscient: ClassVar[bool] = False

    clients: tuple[int, ...]
    victim: int
    strategy: Strategy
    rule: RuleShape
    model: nn.Module
    schedule: LocalSchedule
    server_lr: float
    first_round: int
    dp: ClientDP | None = None
    train_mode: bool = True
    plans: dict[int, Plan] = field(default_factory=dict)
    models_seen: dict[int, Params] = field(default_factory=dict)
    seen: dict[int, ClientRound] = field(default_factory=dict)
    dummy: Tensor | None = None

    def upload(self, context: ByzantineContext) -> Tensor:
        t = context.round
        if t < self.first_round:
            return context.own_update
        if t not in self.plans:
            self.models_seen[t] = context.parameters
            self.seen[t] = context.observation
            self.plans[t] = self._plan(context)
        return self.plans[t].uploads[self.clients.index(context.client_id)]

    def victim_labels(self, round_: int) -> Tensor | None:
        """The victim's labels of ``round_``, when the threat granted labels."""
        granted = self.seen[round_].granted_labels
        return None if granted is None else granted.get(self.victim)

    def own_batch(self, round_: int) -> tuple[Tensor, Tensor]:
        seen = self.seen[round_]
        assert seen.own_images is not None and seen.own_labels is not None, "it trained"
        return seen.own_images, seen.own_labels

    def revealed_between(self, round_: int, before: Params, after: Params) -> Revealed:
        """What round ``round_``'s aggregate exposed, read off the global models around it."""
        layout = ParamLayout.of(before)
        step = self.server_lr * self.schedule.lr
        aggregate = (layout.flatten(before) - layout.flatten(after)) / step
        return self.strategy.reveal(self.rule, aggregate, self.plans[round_])

    def estimate(self, context: ByzantineContext) -> Estimate:
        """The attacker's picture of this round's honest updates, from what ``context`` holds
        (what :meth:`upload` plans on; ``gradleak analyze --config`` evaluates it offline)."""
        self.seen[context.round] = context.observation
        self.models_seen.setdefault(context.round, context.parameters)
        return self._estimate(context)

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
            delta, _ = local_update(
                self.model, context.parameters, context.buffers, x, y, self.schedule
            )
            flat = layout.flatten(delta)
            return flat if self.dp is None else clip_to_norm(flat, self.dp.clip_norm)

        centre = update(images, labels)
        singles = torch.stack(
            [update(images[i : i + 1], labels[i : i + 1]) for i in range(len(labels))]
        )
        spread = singles.std(dim=0, correction=0) / len(labels) ** 0.5
        if self.dp is not None:
            spread = (spread.square() + self.dp.noise_std**2).sqrt()
        victim = self._tracked(context.round)
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
        before = self.models_seen[previous]
        revealed = self.revealed_between(previous, before, self.models_seen[context.round])
        own_labels = self.own_batch(previous)[1]
        victim_labels = self.victim_labels(previous)
        labels = torch.cat([own_labels if victim_labels is None else victim_labels,
                            *[own_labels] * (revealed.groups - 1)])  # fmt: skip
        if self.dummy is None or self.dummy.shape[0] != len(labels):
            self.dummy = images.repeat(revealed.groups, 1, 1, 1)
        clip = None if self.dp is None else self.dp.clip_norm
        dummy = self.dummy.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([dummy], lr=getattr(self.strategy, "inversion_lr", 0.05))
        for _ in range(steps):
            self.model.train(self.train_mode)
            groups = group_updates(self.model, self.schedule, revealed.groups, before,
                                   context.buffers, dummy, labels, clip)  # fmt: skip
            stacked = layout.stack(groups)
            predicted = combine(stacked, revealed.rule, revealed.uploads)
            loss = (predicted - revealed.update).square().sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                dummy.clamp_(0.0, 1.0)
        self.dummy = dummy.detach()
        return self.dummy[: len(own_labels)]

    def _tracked(self, round_: int) -> Tensor | None:
        """Last round's exposed update, when the attacker believes it was the victim's alone."""
        previous = round_ - 1
        if previous not in self.plans or round_ not in self.models_seen:
            return None
        revealed = self.revealed_between(
            previous, self.models_seen[previous], self.models_seen[round_]
        )
        return revealed.update if revealed.groups == 1 and revealed.rule is None else None
