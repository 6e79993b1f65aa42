"""Reconstructability: how much of one victim's update survives in the aggregate.

Measured by simulation for a rule, N clients, f attackers and client DP, on rounds of honest
updates from a geometry source (``experiments.geometry``): by default synthetic ones, a common
direction plus independent per-client parts (``spread`` relative to the common part), optionally
clipped to C with Gaussian noise; or a parametrised geometry measured on real updates, or the
real honest rounds of a configured federation (``experiments.recorded_geometry``). The honest curious attacker
uploads its own update and subtracts it as if the rule were the mean; the malicious one plays
the strategy for the rule with a victim estimate ``estimate_error`` spreads off. Reported per
attacker: the victim's weight in the aggregate (and its closed form where one exists: 1/N under
the mean, 1 when a selection rule picks the victim alone), the fraction of coordinates that
carry the victim's value, and the cosine and relative error between what the attacker reads
off the aggregate and the victim's update. This is what makes a defence help the attacker: a
rule that outputs one client's update hands it over undiluted. And the worst rank shift: how
far, in honest order statistics, the aggregate moved from the honest median (what bounds a
coordinate rule's steering).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradleak.config import AggregatorConfig
from gradleak.experiments.geometry import GeometrySource, RoundGeometry, SyntheticGeometry
from gradleak.fl.aggregators import AggregationResult, build_aggregator
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.malicious.strategies import Passive, RuleShape, build_strategy


@dataclass(frozen=True)
class Setting:
    """One analysed deployment."""

    rule: str
    num_clients: int
    num_malicious: int
    noise: float = 0.0
    clip: float | None = None
    spread: float = 1.0
    estimate_error: float = 0.5
    dimension: int = 2000
    beta: float = 0.25
    strategy: str = "auto"
    """The malicious client's strategy (``threat.strategy``; ``auto``: the one for the rule)."""
    strategy_options: dict[str, Any] = field(default_factory=dict)
    """Its options (``threat.strategy_options``), so an analysed config plays what it runs."""


@dataclass(frozen=True)
class Survival:
    """Means over trials for one attacker."""

    attacker: str
    victim_weight: float
    closed_form: float | None
    victim_coordinates: float
    cosine: float
    relative_error: float
    malicious_selected: float | None
    rank_shift: float | None
    trials: int


def closed_form(setting: Setting, attacker: str) -> float | None:
    """The victim's weight where theory gives it: 1/N under the mean, 1 for the malicious
    attacker under Krum (selection succeeds) ; None otherwise."""
    if setting.rule == "mean":
        return 1.0 / setting.num_clients
    if setting.rule == "krum" and attacker == "malicious":
        return 1.0
    return None


def victim_metrics(
    result: AggregationResult, revealed: Tensor, victim: Tensor, row: int
) -> list[float]:
    if result.sources is not None:
        coordinates = float((result.sources == row).any(dim=0).double().mean())
    else:
        coordinates = float(result.contributions[row] > 0)
    cosine = float(torch.nn.functional.cosine_similarity(revealed, victim, dim=0))
    error = float((revealed - victim).norm() / victim.norm())
    return [float(result.contributions[row]), coordinates, cosine, error]


def rank_shift(uploads: Tensor, aggregate: Tensor) -> float:
    """How far, in honest order statistics, the aggregate sits from the honest clients' own
    median, at the worst coordinate. The aggregate's rank among the sorted honest values is
    k + t between the k-th and (k+1)-th, or the whole run of positions of the honest values it
    equals (real updates tie, on coordinates no one's data moves); the shift is how far the
    median's rank (h + 1) / 2 lies outside that. What bounds a coordinate rule's steering: one
    attacker moves the median by at most one."""
    ordered = uploads.sort(dim=0).values
    h = len(ordered)
    below = (ordered < aggregate).sum(dim=0)
    equal = (ordered == aggregate).sum(dim=0)
    inner = below.clamp(1, h - 1)
    lo = ordered.gather(0, (inner - 1)[None]).squeeze(0)
    hi = ordered.gather(0, inner[None]).squeeze(0)
    gap = (hi - lo).clamp_min(torch.finfo(ordered.dtype).tiny)
    between = (inner + ((aggregate - lo) / gap).clamp(0, 1)).to(ordered.dtype)
    lower = torch.where(equal > 0, (below + 1).to(ordered.dtype), between)
    upper = torch.where(equal > 0, (below + equal).to(ordered.dtype), between)
    middle = (h + 1) / 2
    return float(torch.maximum(lower - middle, middle - upper).clamp_min(0).max())


def one_trial(
    setting: Setting, attacker: str, geometry: RoundGeometry
) -> tuple[list[float], float | None]:
    """Victim weight, victim coordinates, cosine, relative error and rank shift; and the
    malicious uploads' selection (or in-window) rate."""
    n, f = setting.num_clients, setting.num_malicious
    aggregator = build_aggregator(
        AggregatorConfig(name=setting.rule, num_byzantine=f, beta=setting.beta), n
    )
    shape = RuleShape.of(setting.rule, aggregator, n, f)
    uploads, clean, generator = geometry.uploads, geometry.clean, geometry.generator
    strategy = (
        Passive()
        if attacker == "honest"
        else build_strategy(setting.strategy, setting.rule, setting.strategy_options)
    )
    plan = strategy.plan(shape, geometry.estimate, generator)
    malicious, dp = plan.uploads.to(uploads.dtype), geometry.dp
    if dp is not None and dp.clip_norm != float("inf"):
        malicious = torch.stack([clip_to_norm(row, dp.clip_norm) for row in malicious])
    if dp is not None and dp.noise_std > 0:  # noised like honest ones (as MaliciousClient does)
        malicious = malicious + dp.noise_std * torch.randn(
            malicious.shape, generator=generator, dtype=malicious.dtype
        )
    stacked, victim, rows = geometry.stacked(malicious)
    result = aggregator(stacked)
    revealed = strategy.reveal(shape, result.aggregate, plan)
    picked = None
    if result.selected is not None:
        picked = sum(r in set(result.selected.tolist()) for r in rows) / f
    elif result.sources is not None:
        picked = float(
            torch.stack([(result.sources == r).any(dim=0) for r in rows]).double().mean()
        )
    metrics = victim_metrics(result, revealed.update, clean[geometry.victim], victim)
    shift = rank_shift(uploads, result.aggregate) if result.sources is not None else float("nan")
    return [*metrics, shift], picked


def synthetic_source(setting: Setting) -> GeometrySource:
    """The isotropic model the analysis always used, from a setting's spread, DP and estimate
    error."""
    return SyntheticGeometry(
        spread=setting.spread,
        estimate_error=setting.estimate_error,
        dimension=setting.dimension,
        clip=setting.clip,
        noise=setting.noise,
    )


def analyse(
    setting: Setting,
    attacker: str,
    trials: int,
    seed: int = 0,
    source: GeometrySource | None = None,
) -> Survival:
    """Means over ``trials`` seeded rounds from ``source`` (default: the synthetic model of
    ``setting``); ``rank_shift`` is the worst over them (coordinate rules only)."""
    source = source or synthetic_source(setting)
    h = setting.num_clients - setting.num_malicious
    rows, picks = [], []
    for geometry in source.rounds(h, trials, seed):
        values, picked = one_trial(setting, attacker, geometry)
        rows.append(values)
        if picked is not None:
            picks.append(picked)
    table = torch.tensor(rows)
    means = table.mean(dim=0).tolist()
    return Survival(
        attacker,
        means[0],
        closed_form(setting, attacker),
        means[1],
        means[2],
        means[3],
        sum(picks) / len(picks) if picks else None,
        None if table[:, 4].isnan().any() else float(table[:, 4].max()),
        len(rows),
    )
