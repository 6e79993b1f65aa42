"""Time to quality: how long gradleak needs to reach the PSNR breaching ends with.

breaching's Inverting Gradients runs ``n`` iterations (the issue's figure is 2000) on
ConvNet-16-small, B=1, the first CIFAR-10 test image; its final PSNR is the bar and its wall
(and CPU) time the reference. gradleak then runs candidate settings fixed here in advance, not
chosen on this image: the same IG maths with the whole multistep schedule compressed into a
shorter budget (``n``/16, /8, /4, /3, /2 and ``n`` itself: the schedule's decays come earlier)
as one attack each; the budgets up to ``n``/3 also with a cosine schedule instead, and with 4
restarts batched by ``vmap`` ("batched x4", ``invert_trials``; the restart kept is the one with
the lowest matching loss, so no ground truth picks it). Each candidate is a separate run from
the same start, timed whole (its set-up included). Reported: every
candidate's time and PSNR, and the fastest that reaches the bar (its time / breaching's, the
issue's target ≤ 1/3). gradleak has no plateau stopping rule yet, so none is used.

Used by ``bench_vs_breaching.py --ttq``; runs without breaching too (then the bar is missing
and only the candidates are shown).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bench_helpers import (
    LR,
    MODELS,
    TV,
    Case,
    cifar10_test,
    gradleak_target,
    make_case,
    psnr,
    run_gradleak,
    timed,
)
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.batched import invert_trials
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import LoopSettings
from gradleak.config import AttackConfig

FRACTIONS = (16, 8, 4, 3, 2, 1)
VARIANTS_UP_TO = 3
"""Cosine-schedule and batched-restart candidates only for budgets ≤ n/3 (the issue's target)."""
RESTARTS = 4


def run_schedule(case: Case, n: int, schedule: str, seed: int = 1) -> Tensor:
    """gradleak's IG as ``run_gradleak`` with another learning-rate schedule."""
    config = AttackConfig(
        name="inverting_gradients", iterations=n, lr=LR, tv_weight=TV, labels="given",
        options={"schedule": schedule},
    )  # fmt: skip
    target = gradleak_target(case)
    torch.manual_seed(seed)
    return ATTACKS.get("inverting_gradients")(config).reconstruct(target).images


def batched_restarts(case: Case, n: int, restarts: int = RESTARTS, seed: int = 1) -> Tensor:
    """``restarts`` IG trials of one target in one vmapped batch; the lowest-loss trial's images."""
    model = case.model
    observed = {
        name: g.expand(restarts, *g.shape) for name, g in zip(case.names, case.grads, strict=True)
    }
    result = invert_trials(
        model,
        {k: v.detach() for k, v in model.named_parameters()},
        {k: v.detach() for k, v in model.named_buffers()},
        case.labels.expand(restarts, *case.labels.shape),
        observed,
        (3, 32, 32),
        OBJECTIVES.get("cosine"),
        LoopSettings(n, LR),
        TV,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.images[int(result.best_losses.argmin())]


def time_to_quality(n: int, br: Any) -> str:
    """Run the comparison; returns its one-line summary (also printed with the details)."""
    images, labels = cifar10_test(1)
    case = make_case(MODELS["ConvNet-16-small"], images, labels, normalise=True)
    candidates: dict[str, Callable[[], Tensor]] = {}
    for f in FRACTIONS:
        budget = max(1, n // f)
        candidates[f"IG {budget} it"] = lambda b=budget: run_gradleak(case, b)
        if f >= VARIANTS_UP_TO:
            cosine, batched = f"IG {budget} it, cosine schedule", f"IG {budget} it, batched x4"
            candidates[cosine] = lambda b=budget: run_schedule(case, b, "cosine")
            candidates[batched] = lambda b=budget: batched_restarts(case, b)
    run_gradleak(case, 10)  # warm-ups: first-call costs are not the attack's
    batched_restarts(case, 10)
    bar = None
    if br is not None:
        runner = br.runner(case)
        runner(10)
        before = os.getloadavg()[0]
        wall, cpu, out = timed(lambda: runner(n))
        bar = (psnr(out, images), wall, cpu)
        print(
            f"TTQ breaching IG {n} it ConvNet-16-small B=1: PSNR {bar[0]:.2f} dB, "
            f"{wall:.2f} s wall ({cpu:.2f} CPU); load {before:.2f}->{os.getloadavg()[0]:.2f}",
            flush=True,
        )
    reached: list[tuple[float, float, str, float]] = []
    for name, fn in candidates.items():
        before = os.getloadavg()[0]
        wall, cpu, out = timed(fn)
        score = psnr(out, images)
        mark = ""
        if bar is not None:
            mark = f", wall/breaching {wall / bar[1]:.3f} CPU/breaching {cpu / bar[2]:.3f}"
            if score >= bar[0]:
                reached.append((wall, cpu, name, score))
                mark += ", reaches the bar"
        print(
            f"TTQ gradleak {name}: PSNR {score:.2f} dB, {wall:.2f} s wall ({cpu:.2f} CPU)"
            f"{mark}; load {before:.2f}->{os.getloadavg()[0]:.2f}",
            flush=True,
        )
    if bar is None:
        return "time to quality: n/a (no breaching)"
    if not reached:
        return f"time to quality: no candidate reached breaching's {bar[0]:.2f} dB"
    wall, cpu, name, score = min(reached)
    return (
        f"time to breaching's final PSNR ({bar[0]:.2f} dB, {n} it): gradleak {name} "
        f"{wall:.2f} s wall ({cpu:.2f} CPU, {score:.2f} dB) = {wall / bar[1]:.3f}× breaching's "
        f"wall ({cpu / bar[2]:.3f}× CPU)"
    )
