"""The ``joint`` strategy: the malicious upload optimised together with the inversion [ours].

The paper (Yue et al., 2025; docs/malicious_client.md) says only that its algorithm "jointly optimises gradient inversion and
the malicious update". Our reading, kept small, alternates two steps each attacked round:

(a) *inversion*: a few gradient steps on the attacker's dummy batch against what the previous
    round's aggregate revealed (with the rule replayed, :class:`~gradleak.attacks.rule_replay.
    RuleReplay`); the dummy's update at the current model becomes the victim estimate. This
    runs in :class:`~gradleak.fl.malicious.client.MaliciousClient` (it needs the model) and only
    from the second attacked round on; in the first, the estimate is the steering one.
(b) *upload*: starting from the steering plan of the rule's family, a few Adam steps on the f
    uploads against a differentiable surrogate of "the victim's share of the aggregate",
    averaged over synthetic honest clouds drawn from the :class:`Estimate` (the attacker never
    sees real honest uploads; the victim row is the estimate blurred by ``victim_error``
    spreads, since the estimate is not the truth), plus a stealth term:

    - selection rules (Krum, Multi-Krum, Bulyan's selection stage): soft ranks of Krum scores,
      ``r_j = Σ_i σ((s_j - s_i) / T)``; the loss ``softplus(r_j - m + 1/2)`` pushes every target
      (the victim; for m > 1 also the uploads, which must be selected to pass the rule) into the
      m selected. For Krum (m = 1) the uploads are instead kept out of the f most outlying
      scores.
    - coordinate rules (median, trimmed mean): soft per-coordinate ranks, and the soft
      probability that a value lands in the rule's window ``[lo, hi)``; the loss rewards the
      victim's values being in the window and the uploads' values staying in it (inside the
      trimmed range). The rule acts per coordinate, so each step uses a random subset of
      ``coordinates`` coordinates (stochastic, and cheap on large models).
    - stealth: ``stealth · relu(‖u - centre‖ / r - 1)²`` with r the expected distance of an
      honest update to the centre.

    The optimised plan is kept only when, scored with the *real* rule on fresh synthetic
    clouds, it does at least as well as the steering plan it started from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.fl.aggregators_selection import krum_scores
from gradleak.fl.malicious.strategies import (
    STRATEGIES,
    CoordinateSteering,
    Estimate,
    Plan,
    Revealed,
    RuleShape,
    SelectionSteering,
    Strategy,
)

SELECTION = frozenset({"krum", "multikrum", "bulyan"})
COORDINATE = frozenset({"median", "trimmed_mean"})


@STRATEGIES.register("joint")
@dataclass(frozen=True)
class Joint(Strategy):
    """Steering plan refined by gradient steps on a soft victim-share surrogate with a stealth
    penalty; ``inversion_steps`` dummy-inversion steps per round refine the victim estimate."""

    rules: ClassVar[frozenset[str]] = SELECTION | COORDINATE
    steps: int = 25
    lr: float = 0.03
    temperature: float = 0.1
    stealth: float = 1.0
    samples: int = 16
    victim_error: float = 0.5
    coordinates: int = 4096
    inversion_steps: int = 10
    inversion_lr: float = 0.05

    def _family(self, rule: RuleShape) -> Strategy:
        return SelectionSteering() if rule.name in SELECTION else CoordinateSteering()

    def reveal(self, rule: RuleShape, aggregate: Tensor, plan: Plan) -> Revealed:
        return self._family(rule).reveal(rule, aggregate, plan)

    def plan(self, rule: RuleShape, estimate: Estimate, generator: torch.Generator) -> Plan:
        start = self._family(rule).plan(rule, estimate, generator)
        if self.steps <= 0:
            return start
        spread = estimate.spread.clamp_min(torch.finfo(estimate.spread.dtype).tiny)
        radius = spread.square().sum().sqrt()
        train, test = (
            self._clouds(rule, estimate, spread, generator),
            self._clouds(rule, estimate, spread, generator),
        )
        delta = torch.zeros_like(start.uploads, requires_grad=True)
        optimiser = torch.optim.Adam([delta], lr=self.lr)
        d = spread.numel()
        for _ in range(self.steps):
            uploads = start.uploads + delta * spread
            if rule.name in COORDINATE and d > self.coordinates:
                idx = torch.randperm(d, generator=generator)[: self.coordinates].to(spread.device)
                loss = self._surrogate(rule, train[..., idx], uploads[:, idx], spread[idx])
            else:
                loss = self._surrogate(rule, train, uploads, spread)
            distance = (uploads - estimate.centre).norm(dim=1) / radius
            loss = loss + self.stealth * F.relu(distance - 1).square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        tuned = (start.uploads + delta.detach() * spread).detach()
        return (
            Plan(tuned)
            if self.score(rule, test, tuned) >= self.score(rule, test, start.uploads)
            else start
        )

    def _clouds(
        self, rule: RuleShape, estimate: Estimate, spread: Tensor, generator: torch.Generator
    ) -> Tensor:
        """``(samples, h, d)`` synthetic honest uploads; row 0 is the victim estimate."""
        h, d = rule.num_honest, spread.numel()
        noise = torch.randn((self.samples, h - 1, d), generator=generator, dtype=spread.dtype).to(
            spread.device
        )
        others = estimate.centre + spread * noise
        error = torch.randn((self.samples, 1, d), generator=generator, dtype=spread.dtype).to(
            spread.device
        )
        victim = estimate.victim + self.victim_error * spread * error
        return torch.cat([victim, others], dim=1)

    def _surrogate(
        self, rule: RuleShape, honest: Tensor, uploads: Tensor, spread: Tensor
    ) -> Tensor:
        rows = torch.cat([honest, uploads.expand(honest.shape[0], -1, -1)], dim=1)
        h, n = honest.shape[1], rows.shape[1]
        if rule.name in SELECTION:
            scale = 2 * spread.square().sum()
            scores = torch.stack(
                [krum_scores(torch.cdist(r, r).square() / scale, rule.num_malicious) for r in rows]
            )
            ranks = (
                torch.sigmoid((scores.unsqueeze(2) - scores.unsqueeze(1)) / self.temperature).sum(2)
                - 0.5
            )
            m = rule.num_selected or 1
            loss = F.softplus(ranks[:, 0] - m + 0.5).mean()
            if m > 1:
                return loss + F.softplus(ranks[:, h:] - m + 0.5).mean()
            return loss + F.softplus(ranks[:, h:] - (n - rule.num_malicious) + 0.5).mean()
        lo, hi = rule.window or (0, n)
        t = self.temperature * spread
        ranks = torch.sigmoid((rows.unsqueeze(2) - rows.unsqueeze(1)) / t).sum(2) - 0.5
        inside = torch.sigmoid((ranks - lo + 0.5) * 4) * torch.sigmoid((hi - 0.5 - ranks) * 4)
        return -(inside[:, 0].mean() + inside[:, h:].mean())

    def score(self, rule: RuleShape, honest: Tensor, uploads: Tensor) -> float:
        """With the real rule on synthetic clouds: the victim's selection (or fraction of
        coordinates it supplies) plus the uploads' pass rate (selected, or in the window)."""
        total = 0.0
        h = honest.shape[1]
        for cloud in honest:
            result = rule.aggregator(torch.cat([cloud, uploads]))
            if result.selected is not None:
                chosen = set(result.selected.tolist())
                total += float(0 in chosen)
                if (rule.num_selected or 1) > 1:
                    total += sum(r in chosen for r in range(h, h + len(uploads))) / len(uploads)
            elif result.sources is not None:
                total += float((result.sources == 0).any(dim=0).double().mean())
                total += float(
                    torch.stack(
                        [(result.sources == r).any(dim=0) for r in range(h, h + len(uploads))]
                    )
                    .double()
                    .mean()
                )
        return total / len(honest)
