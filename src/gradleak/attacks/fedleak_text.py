"""FedLeak on text: FedLeak's two ingredients (``attacks.fedleak``) on continuous embeddings.

Partial gradient matching — per tensor, only the largest-magnitude half of the dummy gradient's
entries is compared, Σ_l mean|M⊙(ĝ − g')| − cos(M⊙ĝ, M⊙g') (``objectives.PartialMatching``) —
and the look-ahead gradient regulariser (each AdamW step on signed gradients blends the
direction here with the one at a trial point, weight 0.3; ``steppers.GradientStepper``). The
generator prior and median filter of the image attack have no counterpart for tokens; the
embeddings are projected to the recovered token set instead (``attacks.text_inversion``).
"""

from __future__ import annotations

import dataclasses

from gradleak.attacks.base import ATTACKS
from gradleak.attacks.fedleak import FedLeakMatchingOptions
from gradleak.attacks.objectives import PartialMatching
from gradleak.attacks.plateau import rule_from
from gradleak.attacks.target import AttackTarget
from gradleak.attacks.text_inversion import (
    TextInversionAttack,
    TextInversionOptions,
    TextMatching,
    Trial,
    plain_trial,
)
from gradleak.attacks.text_problem import TextProblem


class FedLeakTextOptions(TextInversionOptions, FedLeakMatchingOptions):
    """The text inversion's options and FedLeak's matching options."""


@ATTACKS.register("fedleak_text")
class FedLeakText(TextInversionAttack):
    name = "fedleak_text"
    Options = FedLeakTextOptions
    options: FedLeakTextOptions
    default_lr = 0.02
    default_tv_weight = 0.0

    def matching(self, target: AttackTarget, problem: TextProblem) -> TextMatching:
        objective = PartialMatching(self.options.mask_source, self.options.keep)
        return TextMatching(target, problem, objective, self.options.lookup_temperature)

    def trial(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Trial:
        settings = self.options.loop_settings(
            self.config.iterations, self.lr, self.config.log_every
        )
        settings = dataclasses.replace(settings, plateau=rule_from(self.config.stop_on_plateau))
        return plain_trial(lambda emb: matching(emb, problem.labels), settings)
