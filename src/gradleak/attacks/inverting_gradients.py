"""Inverting Gradients (Geiping et al., NeurIPS 2020).

The paper's settings are the defaults: 1 − cosine gradient distance plus total variation, Adam
with lr 0.1 on *signed* gradients, the learning rate divided by 10 at 3/8, 5/8 and 7/8 of the
budget, pixels boxed to [0, 1], and restarts keeping the one whose update matches best. FedAvg
updates are handled by the target's update model, which unrolls the local steps. BatchNorm
statistics matching is an optional extra prior (it needs the model's buffers).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from gradleak.attacks.base import ATTACKS, Attack, AttackOptions, ProgressCallback, Reconstruction
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import MatchingLoss, reconstruction, trial_generator
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import SCHEDULERS, LoopSettings, optimize_restarts
from gradleak.attacks.parametrizations import (
    PARAMETRIZATIONS,
    Parametrization,
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
class InvertingGradients(Attack):
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

    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        opts = self.options
        labels = resolve_labels(self.config.labels, target)
        batchnorm = None
        if opts.bn_weight > 0:
            batchnorm = BatchNormMatching(
                target.model, reference_statistics(target.model, target.buffers)
            )
        loss = MatchingLoss(
            target,
            self.objective,
            self.tv_weight,
            batchnorm,
            opts.bn_weight,
        )
        make_param = self.make_param
        shape = (target.num_images, *target.image_shape)
        generator = trial_generator()
        param_settings = ParametrizationSettings(scale=opts.scale)

        def make_trial() -> tuple[Parametrization, Callable[[], Tensor], list[Tensor]]:
            param = make_param(shape, generator, target.device, param_settings)
            return param, lambda: loss(param.images(), labels), []

        settings = LoopSettings(
            self.config.iterations,
            self.lr,
            opts.optimizer,
            opts.schedule,
            opts.signed,
            self.config.log_every,
        )
        best = optimize_restarts(make_trial, settings, self.config.restarts, callback)
        return reconstruction(best, best.parametrization.images(), labels)
