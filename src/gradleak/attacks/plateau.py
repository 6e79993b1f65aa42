"""Stopping a trial whose best loss has stopped falling (``attack.stop_on_plateau``).

Attack quality is bought with iterations, but most of a long budget is often spent where the
matching loss no longer moves (the curves of ``bench/bench_quality_budget.py`` flatten long
before the end). A plateau rule ends such a trial early: at a logging step, if its best loss
fell by less than ``tolerance`` (relative) over the last ``patience`` iterations, it stops there
and keeps its best point, as an interrupted trial does.

The rule is checked only at logging steps, where the loops already bring the loss to the host,
so it adds no synchronisation. It watches a vector of best losses, one per trial, so that the
sequential loop (one trial) and the batched one (``attacks.batched``, T trials side by side)
stop each trial at the same iteration: a batch freezes a trial that has stalled and ends when
none is left.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.config import PlateauConfig


@dataclass(frozen=True)
class PlateauRule:
    """Stop when the best loss fell by less than ``tolerance`` × itself over ``patience``
    iterations (both positive; ``tolerance`` below 1)."""

    patience: int
    tolerance: float

    def __post_init__(self) -> None:
        if self.patience < 1 or not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"a plateau rule needs patience >= 1 and 0 < tolerance < 1: {self}")


def rule_from(config: PlateauConfig | None) -> PlateauRule | None:
    """The loop's rule for ``attack.stop_on_plateau`` (None: run the whole budget)."""
    return None if config is None else PlateauRule(config.patience, config.tolerance)


class PlateauWatch:
    """The best losses seen at past logging steps, and which trials have stalled since."""

    def __init__(self, rule: PlateauRule) -> None:
        self.rule = rule
        self.history: list[tuple[int, Tensor]] = []

    def stalled(self, step: int, best_losses: Tensor) -> Tensor:
        """Which trials' best loss (a (T,) tensor at iteration ``step``) fell by less than the
        tolerance since the latest logging step at least ``patience`` iterations ago; none
        before that many iterations have passed. A trial with no finite loss yet never
        counts as stalled here (divergence is the loops' own rule)."""
        best = best_losses.detach().clone()
        self.history.append((step, best))
        earlier = [b for s, b in self.history if s <= step - self.rule.patience]
        if not earlier:
            return torch.zeros_like(best, dtype=torch.bool)
        then = earlier[-1]
        self.history = self.history[len(earlier) - 1 :]  # older entries are never needed again
        finite = torch.isfinite(then) & torch.isfinite(best)
        gain = (then - best) / then.abs().clamp_min(1e-30)
        return finite & (gain < self.rule.tolerance)
