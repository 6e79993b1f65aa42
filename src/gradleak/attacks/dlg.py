"""Deep Leakage from Gradients (Zhu et al., NeurIPS 2019) and iDLG (Zhao et al., 2020).

DLG optimises dummy images *and* soft dummy labels with L-BFGS (lr 1, torch's 20 evaluations
per step) on the squared gradient distance, without a box or any prior: it needs no knowledge
of the labels. iDLG is the same optimisation with the labels read off the update analytically
first (the sign of the last layer's gradient for one image, class counts for a batch), which
removes the hardest part of DLG's search.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gradleak.attacks.base import ATTACKS, Attack, AttackOptions, ProgressCallback, Reconstruction
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import MatchingLoss, reconstruction, trial_generator
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import SCHEDULERS, LoopSettings, optimize_restarts
from gradleak.attacks.parametrizations import (
    Parametrization,
    ParametrizationSettings,
    PixelParametrization,
)
from gradleak.attacks.steppers import OPTIMIZERS
from gradleak.attacks.target import AttackTarget
from gradleak.config import AttackConfig


class DLGOptions(AttackOptions):
    objective: str = "l2"
    optimizer: str = "lbfgs"
    schedule: str = "constant"
    lbfgs_inner: int = 20
    box: bool = False


@ATTACKS.register("dlg")
class DLG(Attack):
    """With ``attack.labels=recovered`` (the default) the labels are optimised jointly, as in
    the paper; ``given`` uses the true labels and so needs ``threat.knows_labels``."""

    name = "dlg"
    Options = DLGOptions
    options: DLGOptions
    default_lr = 1.0
    default_tv_weight = 0.0
    joint_labels = True
    """Optimise soft labels with the images (DLG) rather than recover them first (iDLG)."""

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.objective = self.component("objective", OBJECTIVES)
        self.component("optimizer", OPTIMIZERS)
        self.component("schedule", SCHEDULERS)

    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        opts = self.options
        joint = self.joint_labels and self.config.labels == "recovered"
        fixed = None if joint else resolve_labels(self.config.labels, target)
        loss = MatchingLoss(target, self.objective, self.tv_weight)
        shape = (target.num_images, *target.image_shape)
        generator = trial_generator()
        param_settings = ParametrizationSettings(box=opts.box)

        def make_trial() -> tuple[Parametrization, Callable[[], Tensor], list[Tensor]]:
            param = PixelParametrization(shape, generator, target.device, param_settings)
            if fixed is not None:
                return param, lambda: loss(param.images(), fixed), []
            logits = torch.randn((target.num_images, target.num_classes), generator=generator)
            logits = logits.to(target.device).requires_grad_(True)
            return param, lambda: loss(param.images(), logits.softmax(-1)), [logits]

        settings = LoopSettings(
            self.config.iterations,
            self.lr,
            opts.optimizer,
            opts.schedule,
            signed=False,
            log_every=self.config.log_every,
            lbfgs_inner=opts.lbfgs_inner,
        )
        best = optimize_restarts(make_trial, settings, self.config.restarts, callback)
        labels = best.extra[0].argmax(-1) if joint else fixed
        return reconstruction(best, best.parametrization.images(), labels)


@ATTACKS.register("idlg")
class IDLG(DLG):
    name = "idlg"
    joint_labels = False
