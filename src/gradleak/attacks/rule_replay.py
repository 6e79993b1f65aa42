"""Replaying what the aggregate exposed, rule included, so the inversion matches its structure.

The curious client's :class:`~gradleak.attacks.target.UpdateModel` averages its dummy groups.
Under a robust rule the attacker knows more: under client-side DP every honest update was
clipped to the common norm C, and under a coordinate rule each coordinate of the exposed update
is a mean of order statistics of the honest updates *and the attacker's own uploads*, which it
knows. :class:`RuleReplay` applies both to the dummy groups' updates, differentiably (sorting
and selection pass gradients to the values they pick).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gradleak.attacks.target import UpdateModel
from gradleak.fl.aggregators import Aggregator
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import Params
from gradleak.fl.replay import combine


@dataclass(frozen=True)
class RuleReplay(UpdateModel):
    """``num_groups`` dummy clients' updates (clipped to ``clip_norm`` when set), combined
    by their mean or, when ``rule`` is set, by ``rule`` applied to them stacked above the
    attacker's known ``uploads`` ``(f, d)``."""

    rule: Aggregator | None = None
    uploads: Tensor | None = None

    def __call__(
        self,
        params: Params,
        buffers: Params,
        images: Tensor,
        labels: Tensor,
        create_graph: bool = True,
        functional: bool = False,
    ) -> Params:
        layout = ParamLayout.of(params)
        updates = self.group_updates(params, buffers, images, labels, create_graph, functional)
        stacked = layout.stack(updates)
        return layout.unflatten(self.combine(stacked))

    def combine(self, stacked: Tensor) -> Tensor:
        """The exposed ``(d,)`` update from the groups' ``(g, d)`` updates."""
        return combine(stacked, self.rule, self.uploads)
