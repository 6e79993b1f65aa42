"""Where ``gradleak analyze`` gets one round's honest updates from: a geometry source.

The analysis of a rule (``experiments.malicious_analysis``) plays the malicious strategy against
one round of honest updates and the attacker's estimate of them. Whether steering works depends
on that round's geometry far more than on the rule: in isotropic high-dimensional noise every
pairwise distance concentrates on the same value, so the smallest nudge makes the victim
Krum's choice; real client updates share a direction, differ in norm, the victim may sit far
from the others, and the attacker's estimate of it (its own images relabelled) may be poor.

A source returns :class:`RoundGeometry` (the victim in row 0). ``synthetic`` draws a common
direction plus per-client parts whose size, spread of norms and victim offset are parameters
(its defaults are the old isotropic model, draw for draw); ``recorded`` (in
``experiments.recorded_geometry``) takes the real honest round of a configured federation, and
``calibrated`` draws synthetic rounds whose quantities (:class:`Shape`) are measured on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from gradleak.config import ExperimentConfig
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.malicious.client import ClientDP
from gradleak.fl.malicious.strategies import Estimate
from gradleak.registry import Registry


@dataclass(frozen=True)
class RoundGeometry:
    """One round as the analysis needs it.

    ``uploads``: the ``(h, d)`` honest uploads the server sees (after client DP), the victim in
    row ``victim``, the malicious ones to go in before row ``insert_at`` (None: after them all);
    ``clean``: the same before DP noise; ``estimate``: what the attacker believes;
    ``dp``: the clip-and-noise every upload gets (the malicious ones too, as
    :class:`~gradleak.fl.malicious.client.MaliciousClient` does); ``generator``: the attacker's
    randomness for this round's plan.
    """

    uploads: Tensor
    clean: Tensor
    estimate: Estimate
    dp: ClientDP | None
    generator: torch.Generator
    victim: int = 0
    insert_at: int | None = None

    def stacked(self, malicious: Tensor) -> tuple[Tensor, int, range]:
        """The server's ``(n, d)`` rows with the malicious uploads in their place, the victim's
        row and the malicious rows. The place matters where values tie (real updates do, on
        coordinates few clients' data moves): a coordinate rule credits a tie to one row."""
        at = len(self.uploads) if self.insert_at is None else self.insert_at
        rows = torch.cat([self.uploads[:at], malicious, self.uploads[at:]])
        victim = self.victim + (len(malicious) if self.victim >= at else 0)
        return rows, victim, range(at, at + len(malicious))

    def shape(self) -> Shape:
        """This round's :class:`Shape`."""
        order = [self.victim, *[k for k in range(len(self.clean)) if k != self.victim]]
        return Shape.of(self.clean[order], self.estimate.centre, self.estimate.victim)


class GeometrySource(ABC):
    """Something that yields rounds of honest updates for a rule with ``num_honest`` honest
    clients."""

    @abstractmethod
    def rounds(self, num_honest: int, trials: int, seed: int) -> Iterator[RoundGeometry]:
        """``trials`` rounds, seeded so that a source repeats itself; lazily, because a round's
        generator may be shared with the next one (the analysis plans before the next draw)."""


@dataclass(frozen=True)
class GeometryRequest:
    """What ``gradleak analyze`` was asked for; each source takes the fields it needs."""

    spread: float = 1.0
    rank: int | None = None
    victim_offset: float = 1.0
    victim_rank: int | None = None
    estimate_error: float = 0.5
    dimension: int = 2000
    clip: float | None = None
    noise: float = 0.0
    config: ExperimentConfig | None = None


GEOMETRIES: Registry[Callable[[GeometryRequest], GeometrySource]] = Registry("update geometry")


@dataclass(frozen=True)
class SyntheticGeometry(GeometrySource):
    """A common direction (norm about 1) plus independent per-client parts of norm about
    ``spread``.

    ``rank``: the parts live in a random ``rank``-dimensional subspace (None: the whole space,
    the isotropic model). Few dimensions make pairwise distances vary from pair to pair, as
    those of real updates do (clients with like labels have like updates); in the whole space
    they all concentrate on one value, and any nudge decides Krum. ``victim_offset``: the
    victim's part is this many times a typical one (1: as central as anyone; 3: far out).
    ``victim_rank``: the victim is the honest client that is this many places from the most
    central one, by distance to the honest clients' mean (0: the most central; None: any).
    ``estimate_error``: the attacker's victim estimate is this many (typical) parts off. The
    attacker knows the centre as its own update and the typical per-coordinate spread.
    ``clip``/``noise``: client DP.
    """

    spread: float = 1.0
    rank: int | None = None
    victim_offset: float = 1.0
    estimate_error: float = 0.5
    dimension: int = 2000
    victim_rank: int | None = None
    clip: float | None = None
    noise: float = 0.0

    def rounds(self, num_honest: int, trials: int, seed: int) -> Iterator[RoundGeometry]:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(trials):
            yield self.draw(num_honest, generator)

    def draw(self, h: int, generator: torch.Generator) -> RoundGeometry:
        """One round. The random draws are the old isotropic model's, in its order, when
        ``rank`` is None."""
        d = self.dimension
        common = torch.randn(d, generator=generator, dtype=torch.float64) / d**0.5
        if self.rank is None:
            parts = torch.randn((h + 1, d), generator=generator, dtype=torch.float64) / d**0.5
        else:
            k = min(self.rank, d)
            basis = torch.linalg.qr(
                torch.randn((d, k), generator=generator, dtype=torch.float64)
            ).Q.T
            parts = torch.randn((h + 1, k), generator=generator, dtype=torch.float64) @ basis
            parts = parts / k**0.5
        if self.victim_rank is not None:
            honest = parts[:h]
            order = (honest - honest.mean(dim=0)).norm(dim=1).argsort()
            chosen = int(order[min(self.victim_rank, h - 1)])
            parts[[0, chosen]] = parts[[chosen, 0]]
        scale = torch.ones(h + 1, dtype=torch.float64)
        scale[0] = self.victim_offset
        clean = common + self.spread * scale[:, None] * parts
        if self.clip is not None:
            clean = torch.stack([clip_to_norm(row, self.clip) for row in clean])
        noise_std = self.noise * (self.clip or 1.0)
        noise = noise_std * torch.randn((h, d), generator=generator, dtype=torch.float64)
        own = clean[h]
        spread = torch.full_like(own, self.spread / d**0.5)
        spread = (spread.square() + noise_std**2).sqrt()
        error = self.estimate_error * spread * torch.randn(d, generator=generator, dtype=own.dtype)
        dp = None if self.clip is None else ClientDP(self.clip, noise_std)
        if dp is None and noise_std > 0:
            dp = ClientDP(float("inf"), noise_std)
        estimate = Estimate(clean[0] + error, own, spread)
        return RoundGeometry(clean[:h] + noise, clean[:h], estimate, dp, generator)


@dataclass(frozen=True)
class OracleEstimate(GeometrySource):
    """``source``'s rounds with the attacker's victim estimate replaced by the victim's true
    update: the ceiling of steering in that geometry.

    It separates the two reasons a steering fails: the estimate is off, or the round's geometry
    (how central the victim is among its peers) forbids it whatever the attacker knows. Not an
    attack: no attacker has the victim's update; the analysis holds every honest upload anyway.
    """

    source: GeometrySource

    def rounds(self, num_honest: int, trials: int, seed: int) -> Iterator[RoundGeometry]:
        for geometry in self.source.rounds(num_honest, trials, seed):
            truth = geometry.clean[geometry.victim].to(geometry.estimate.victim.dtype)
            yield replace(geometry, estimate=replace(geometry.estimate, victim=truth))


@GEOMETRIES.register("synthetic")
def synthetic(request: GeometryRequest) -> GeometrySource:
    return SyntheticGeometry(
        spread=request.spread,
        rank=request.rank,
        victim_offset=request.victim_offset,
        estimate_error=request.estimate_error,
        dimension=request.dimension,
        clip=request.clip,
        noise=request.noise,
        victim_rank=request.victim_rank,
    )


@dataclass(frozen=True)
class Shape:
    """The quantities :class:`SyntheticGeometry` is parametrised by, measured on one real round
    (the victim in row 0 of ``clean``, ``own`` the attacker's honest update, ``estimate`` its
    victim estimate): a description of the geometry, never fitted to a steering outcome.

    ``rank`` comes from how much pairwise distances vary: for Gaussian parts in k dimensions a
    squared distance is a scaled chi-square with k degrees of freedom, so the distance's
    relative standard deviation is about 1/sqrt(2k).
    """

    spread: float
    rank: int
    victim_offset: float
    victim_rank: int
    estimate_error: float

    @classmethod
    def of(cls, clean: Tensor, own: Tensor, estimate: Tensor) -> Shape:
        everyone = torch.cat([clean, own[None]]).double()
        centre = everyone.mean(dim=0)
        n = len(everyone)
        # deviations from the sample mean are sqrt((n-1)/n) of those from the true centre
        parts = (everyone - centre).norm(dim=1) * (n / (n - 1)) ** 0.5
        typical = parts[1:].square().mean().sqrt()
        pairs = torch.pdist(everyone[1:])  # the victim's own offset is measured apart
        variation = float(pairs.std() / pairs.mean())
        rank = max(1, min(everyone.shape[1], round(1 / (2 * max(variation, 1e-6) ** 2))))
        honest = clean.double()
        distance = (honest - honest.mean(dim=0)).norm(dim=1)
        return cls(
            spread=float(typical / centre.norm()),
            rank=rank,
            victim_offset=float(parts[0] / typical),
            victim_rank=int((distance < distance[0]).sum()),
            estimate_error=float((estimate.double() - clean[0].double()).norm() / typical),
        )

    def synthetic(self, dimension: int = 2000) -> SyntheticGeometry:
        """The synthetic geometry with these quantities; the victim's centrality enters as its
        rank (``victim_offset`` would count it twice)."""
        return SyntheticGeometry(
            spread=self.spread,
            rank=self.rank,
            estimate_error=self.estimate_error,
            dimension=dimension,
            victim_rank=self.victim_rank,
        )
