"""FedLeak (Fan, Wang, Chen, Zhou; USENIX Security 2025), as in the authors' code.

Images are the output of an untrained convolutional generator whose weights are optimised (an
implicit prior); the objective is partial gradient matching, Σ_l mean|M⊙(ĝ − g')| −
cos(M⊙ĝ, M⊙g') + 1e-5·TV; each AdamW step (lr 1e-2, cosine schedule) is taken on a blend of
the signed gradient here and at a look-ahead point (gradient regularisation, which steers
towards flat minima of the matching loss); the output goes through a 5×5 median filter.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gradleak.attacks.base import ATTACKS, AttackOptions, Reconstruction
from gradleak.attacks.gradient_matching import GradientMatchingAttack
from gradleak.attacks.matching import MatchingLoss, reconstruction
from gradleak.attacks.objectives import PartialMatching
from gradleak.attacks.optim import LoopSettings, RestartResult
from gradleak.attacks.parametrizations import (
    GeneratorParametrization,
    ParametrizationFactory,
    ParametrizationSettings,
)
from gradleak.attacks.target import AttackTarget


class FedLeakOptions(AttackOptions):
    mask_source: Literal["dummy", "target"] = "dummy"
    keep: float = Field(default=0.5, gt=0.0, le=1.0)
    """Fraction of each gradient tensor's entries kept by the partial-matching mask."""
    lookahead: Literal["none", "l1", "l2"] = "l1"
    lookahead_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    generator_width: int = Field(default=256, ge=1)
    latent_dim: int = Field(default=128, ge=1)
    median_kernel: int = Field(default=5, ge=1)
    """Side of the output median filter; 1 turns it off."""


def median_filter(images: Tensor, kernel: int) -> Tensor:
    """Per-channel median over ``kernel``×``kernel`` windows, reflect-padded to keep the size:
    removes the generator's isolated speckles without blurring edges."""
    if kernel == 1:
        return images
    pad = kernel // 2
    padded = F.pad(images, (pad, kernel - 1 - pad, pad, kernel - 1 - pad), mode="reflect")
    windows = padded.unfold(2, kernel, 1).unfold(3, kernel, 1)
    return windows.flatten(-2).median(dim=-1).values


@ATTACKS.register("fedleak")
class FedLeak(GradientMatchingAttack):
    name = "fedleak"
    Options = FedLeakOptions
    options: FedLeakOptions
    default_lr = 1e-2
    default_tv_weight = 1e-5

    def loss(self, target: AttackTarget) -> MatchingLoss:
        objective = PartialMatching(self.options.mask_source, self.options.keep)
        return MatchingLoss(target, objective, self.tv_weight)

    def parametrization(self) -> tuple[ParametrizationFactory, ParametrizationSettings]:
        opts = self.options
        settings = ParametrizationSettings(latent_dim=opts.latent_dim, width=opts.generator_width)
        return GeneratorParametrization, settings

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            self.config.iterations,
            self.lr,
            "adamw",
            "cosine",
            signed=True,
            log_every=self.config.log_every,
            lookahead=self.options.lookahead,
            lookahead_weight=self.options.lookahead_weight,
        )

    def postprocess(self, best: RestartResult, labels: Tensor | None) -> Reconstruction:
        """The median-filtered images; the unfiltered ones go to ``extra`` for comparison."""
        images = best.parametrization.images().detach()
        return reconstruction(
            best,
            median_filter(images, self.options.median_kernel),
            labels,
            unfiltered=images.clamp(0, 1),
        )
