"""Reconstructability: how much of one victim's update survives in the aggregate.

Measured by simulation on synthetic updates, for a rule, N clients, f attackers and client DP:
honest updates are a common direction plus independent per-client parts (``spread`` relative
to the common part), optionally clipped to C with Gaussian noise. The honest curious attacker
uploads its own update and subtracts it as if the rule were the mean; the malicious one plays
the strategy for the rule with a victim estimate ``estimate_error`` spreads off. Reported per
attacker: the victim's weight in the aggregate (and its closed form where one exists: 1/N under
the mean, 1 when a selection rule picks the victim alone), the fraction of coordinates that
carry the victim's value, and the cosine and relative error between what the attacker reads
off the aggregate and the victim's update. This is what makes a defence help the attacker: a
rule that outputs one client's update hands it over undiluted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.config import AggregatorConfig
from gradleak.fl.aggregators import AggregationResult, build_aggregator
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.malicious.strategies import Estimate, Passive, RuleShape, build_strategy


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


def closed_form(setting: Setting, attacker: str) -> float | None:
    """The victim's weight where theory gives it: 1/N under the mean, 1 for the malicious
    attacker under Krum (selection succeeds) ; None otherwise."""
    if setting.rule == "mean":
        return 1.0 / setting.num_clients
    if setting.rule == "krum" and attacker == "malicious":
        return 1.0
    return None


def honest_round(setting: Setting, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(uploads of the n - f honest clients, their clean updates, the attacker's own update)."""
    d, h = setting.dimension, setting.num_clients - setting.num_malicious
    common = torch.randn(d, generator=generator, dtype=torch.float64) / d**0.5
    parts = torch.randn((h + 1, d), generator=generator, dtype=torch.float64) / d**0.5
    clean = common + setting.spread * parts
    if setting.clip is not None:
        clean = torch.stack([clip_to_norm(row, setting.clip) for row in clean])
    noise_std = setting.noise * (setting.clip or 1.0)
    noise = noise_std * torch.randn((h, d), generator=generator, dtype=torch.float64)
    return clean[:h] + noise, clean[:h], clean[h]


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


def one_trial(
    setting: Setting, attacker: str, generator: torch.Generator
) -> tuple[list[float], float | None]:
    """Victim weight, victim coordinates, cosine, relative error; and the malicious uploads'
    selection (or in-window) rate."""
    n, f = setting.num_clients, setting.num_malicious
    aggregator = build_aggregator(
        AggregatorConfig(name=setting.rule, num_byzantine=f, beta=setting.beta), n
    )
    shape = RuleShape.of(setting.rule, aggregator, n, f)
    uploads, clean, own = honest_round(setting, generator)
    spread = torch.full_like(own, setting.spread / setting.dimension**0.5)
    spread = (spread.square() + (setting.noise * (setting.clip or 1.0)) ** 2).sqrt()
    error = (
        setting.estimate_error
        * spread
        * torch.randn(own.shape, generator=generator, dtype=own.dtype)
    )
    estimate = Estimate(clean[0] + error, own, spread)
    strategy = Passive() if attacker == "honest" else build_strategy("auto", setting.rule, {})
    plan = strategy.plan(shape, estimate, generator)
    malicious = plan.uploads
    if setting.clip is not None:
        malicious = torch.stack([clip_to_norm(row, setting.clip) for row in malicious])
    noise_std = setting.noise * (setting.clip or 1.0)
    if noise_std > 0:  # the uploads are noised like honest ones (as MaliciousClient does)
        malicious = malicious + noise_std * torch.randn(
            malicious.shape, generator=generator, dtype=malicious.dtype
        )
    result = aggregator(torch.cat([uploads, malicious]))
    revealed = strategy.reveal(shape, result.aggregate, plan)
    picked = None
    rows = range(n - f, n)
    if result.selected is not None:
        picked = sum(r in set(result.selected.tolist()) for r in rows) / f
    elif result.sources is not None:
        picked = float(
            torch.stack([(result.sources == r).any(dim=0) for r in rows]).double().mean()
        )
    return victim_metrics(result, revealed.update, clean[0], 0), picked


def analyse(setting: Setting, attacker: str, trials: int, seed: int = 0) -> Survival:
    """Means over ``trials`` seeded simulated rounds."""
    generator = torch.Generator().manual_seed(seed)
    rows, picks = [], []
    for _ in range(trials):
        values, picked = one_trial(setting, attacker, generator)
        rows.append(values)
        if picked is not None:
            picks.append(picked)
    means = torch.tensor(rows).mean(dim=0).tolist()
    return Survival(
        attacker,
        means[0],
        closed_form(setting, attacker),
        means[1],
        means[2],
        means[3],
        sum(picks) / len(picks) if picks else None,
    )
