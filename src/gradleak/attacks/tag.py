"""TAG (Deng et al., EMNLP Findings 2021): gradient attack on transformer text models.

Continuous dummy token embeddings are optimised with Adam to minimise the L2 + α·L1 distance
between the replayed update and the observed one (the L1 term keeps the many small gradient
entries in play, which L2 alone lets vanish), then each position is projected to its nearest
token, restricted to the token set the embedding-layer gradient reveals (see
``attacks.text_inversion``). The labels are given or recovered from the head's gradient.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from gradleak.attacks.base import ATTACKS
from gradleak.attacks.objectives import Objective, l1_distance, l2_distance
from gradleak.attacks.optim import SCHEDULERS, LoopSettings
from gradleak.attacks.plateau import rule_from
from gradleak.attacks.steppers import OPTIMIZERS
from gradleak.attacks.target import AttackTarget
from gradleak.attacks.text_inversion import (
    TextInversionAttack,
    TextInversionOptions,
    TextMatching,
    Trial,
    plain_trial,
)
from gradleak.attacks.text_problem import TextProblem
from gradleak.config import AttackConfig
from gradleak.fl.functional import Params


class TagOptions(TextInversionOptions):
    l1_weight: float = Field(default=0.1, ge=0.0)
    """α of the L1 term (chosen on Lee sentences, see ``bench/bench_text_attacks.py``)."""
    optimizer: str = "adam"
    schedule: str = "cosine"


def l2_plus_l1(alpha: float) -> Objective:
    """Σ (ĝ − g)² + α·Σ |ĝ − g| over every tensor (TAG's distance)."""

    def distance(dummy: Params, target: Params) -> Tensor:
        return l2_distance(dummy, target) + alpha * l1_distance(dummy, target)

    return distance


@ATTACKS.register("tag")
class Tag(TextInversionAttack):
    name = "tag"
    Options = TagOptions
    options: TagOptions
    default_lr = 0.05
    default_tv_weight = 0.0

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.component("optimizer", OPTIMIZERS)
        self.component("schedule", SCHEDULERS)

    def matching(self, target: AttackTarget, problem: TextProblem) -> TextMatching:
        return TextMatching(
            target, problem, l2_plus_l1(self.options.l1_weight), self.options.lookup_temperature
        )

    def trial(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Trial:
        settings = LoopSettings(
            self.config.iterations,
            self.lr,
            self.options.optimizer,
            self.options.schedule,
            signed=False,
            log_every=self.config.log_every,
            plateau=rule_from(self.config.stop_on_plateau),
        )
        return plain_trial(lambda emb: matching(emb, problem.labels), settings)
