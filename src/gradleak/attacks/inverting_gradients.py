"""Inverting Gradients (Geiping et al., NeurIPS 2020).

The paper's settings are the defaults: 1 − cosine gradient distance plus total variation, Adam
with lr 0.1 on *signed* gradients, the learning rate divided by 10 at 3/8, 5/8 and 7/8 of the
budget, pixels boxed to [0, 1], and restarts keeping the one whose update matches best. FedAvg
updates are handled by the target's update model, which unrolls the local steps. BatchNorm
statistics matching is an optional extra prior (it needs the model's buffers).
"""

from __future__ import annotations

from torch import nn

from gradleak.attacks.base import ATTACKS, AttackOptions
from gradleak.attacks.gradient_matching import GradientMatchingAttack
from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import SCHEDULERS, LoopSettings
from gradleak.attacks.parametrizations import (
    PARAMETRIZATIONS,
    ParametrizationFactory,
    ParametrizationSettings,
)
from gradleak.attacks.regularizers import BatchNormMatching, has_batchnorm, reference_statistics
from gradleak.attacks.steppers import OPTIMIZERS
from gradleak.attacks.target import AttackTarget
from gradleak.config import AttackConfig
from gradleak.errors import ConfigError


class InvertingGradientsOptions(AttackOptions):
    objective: str = "cosine"
    parametrization: str = "pixels"
    scale: int = 4
    optimizer: str = "adam"
    schedule: str = "multistep"
    signed: bool = True
    bn_weight: float = 0.0
    """Weight of BatchNorm-statistics matching; > 0 needs ``threat.knows_buffers``."""


@ATTACKS.register("inverting_gradients")
class InvertingGradients(GradientMatchingAttack):
    name = "inverting_gradients"
    Options = InvertingGradientsOptions
    options: InvertingGradientsOptions

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.objective = self.component("objective", OBJECTIVES)
        self.make_param = self.component("parametrization", PARAMETRIZATIONS)
        self.component("optimizer", OPTIMIZERS)
        self.component("schedule", SCHEDULERS)

    def check_model(self, model: nn.Module) -> None:
        if self.options.bn_weight > 0 and not has_batchnorm(model):
            raise ConfigError(
                f"attack.options.bn_weight={self.options.bn_weight} matches BatchNorm statistics, "
                "but the model has no BatchNorm layers: set attack.options.bn_weight=0 or "
                "model.norm=batchnorm"
            )

    def required_capabilities(self) -> frozenset[str]:
        extra = {"knows_buffers"} if self.options.bn_weight > 0 else set()
        return super().required_capabilities() | extra

    def loss(self, target: AttackTarget) -> MatchingLoss:
        opts = self.options
        batchnorm = None
        if opts.bn_weight > 0:
            batchnorm = BatchNormMatching(
                target.model,
                reference_statistics(target.model, target.buffers, target.observed_buffers),
            )
        return MatchingLoss(target, self.objective, self.tv_weight, batchnorm, opts.bn_weight)

    def parametrization(self) -> tuple[ParametrizationFactory, ParametrizationSettings]:
        return self.make_param, ParametrizationSettings(scale=self.options.scale)

    def loop_settings(self) -> LoopSettings:
        opts = self.options
        return LoopSettings(
            self.config.iterations,
            self.lr,
            opts.optimizer,
            opts.schedule,
            opts.signed,
            self.config.log_every,
        )
