"""The curious client (Wilson et al., arXiv 2410.04661): invert the peers' mean update.

An honest-but-curious client turns two consecutive global models into its peers' mean
pseudo-gradient (``attacks.targets``) and inverts it: one dummy batch stands for all peers'
images of the round (peers × batch size), the target's update model replays each peer's τ local
steps from w_t and averages, and the dummy batch is a low-resolution latent upsampled
bicubically (s = 4), optimised with Adam (lr 0.1, cosine annealing) on the L2 distance (or
cosine). Beyond the paper: labels are recovered from the aggregate unless given (and, being
counts with no owner, dealt to the peers by the matching loss between stages:
``attacks.regrouping``), the distance is normalised by the target's size so that several
observed rounds weigh equally when one dummy batch is matched to all of them, and an optional
learned prior (``options.prior.name``: a DDPM or Real-ESRGAN x4plus, see ``gradleak.priors``)
refines the result and, for Real-ESRGAN, decodes the ¼-size latent in a last matching stage.

Coarse to fine (``refine_scales``, default 2 then 1): the s = 4 latent cannot represent the
images, so its best fit is also its floor (measured: started *at* the 4×-downsampled truth, the
s = 4 optimisation drifts to the same loss as from noise). Each later stage starts from the
previous stage's images (area-downsampled to its latent) and matches again at a finer scale
with the lr divided by ``refine_lr_divisor``; each stage runs ``iterations`` steps. On 1 peer ×
4 images (lenet_dlg, FedAvg τ = 3) this took 15.2 dB at s = 4 to 16.9 dB at s = 1; on 3 peers ×
4 images (lenet_rog, L2, 100 iterations per stage) 14.2 dB at s = 4 alone to 15.1 dB.

Total variation: none by default, as in the paper's code, but the configs set
``attack.tv_weight: 0.02`` (relative to the normalised matching loss): on DLG's sigmoid LeNet,
whose features barely depend on the image, many images fit 3 peers × 4 images as well as the
truth and TV picks the smooth ones (12.0 → 14.8 dB). On one image, whose update pins it down,
the same weight over-smooths (a 1-image FedSGD test drops from above 11 dB to 9.4 dB), hence no
default.

What makes 12 images invertible is the model (``configs/curious_client.yaml``): the paper's
LeNet (``lenet_rog``: a 4096 → 512 linear layer, ~2M parameters) gives the update far more
equations than the 12 × 3072 unknowns, while DLG's LeNet (~16k) gives fewer. With it and the
cosine distance, 4 clients × 4 CIFAR-10 images reach 19.9 dB with given labels, against 14.8 dB
on DLG's LeNet (``bench/bench_curious_client.py``, ``bench/results/curious_client.md``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor

from gradleak.attacks.base import ATTACKS, AttackOptions, ProgressCallback, Reconstruction
from gradleak.attacks.gradient_matching import GradientMatchingAttack, Start
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import MatchingLoss, reconstruction, trial_generator
from gradleak.attacks.objectives import OBJECTIVES, Objective
from gradleak.attacks.optim import SCHEDULERS, LoopSettings, RestartResult
from gradleak.attacks.parametrizations import (
    PARAMETRIZATIONS,
    Parametrization,
    ParametrizationFactory,
    ParametrizationSettings,
    decoded_by,
)
from gradleak.attacks.regrouping import regrouped, spread_order
from gradleak.attacks.regularizers import total_variation
from gradleak.attacks.revival import dead_images, revived
from gradleak.attacks.steppers import OPTIMIZERS
from gradleak.attacks.target import AttackTarget, assume_local_lr, rounds_of
from gradleak.config import AttackConfig
from gradleak.errors import ConfigError
from gradleak.fl.functional import Params
from gradleak.priors.base import PriorOptions


class CuriousClientOptions(AttackOptions):
    objective: str = "l2"
    parametrization: str = "lowres"
    scale: PositiveInt = 4
    optimizer: str = "adam"
    schedule: str = "cosine"
    signed: bool = False
    normalise: Literal["none", "total", "per_tensor"] = "total"
    """How the observed update is scaled before the distance (see ``tensor_scales``)."""
    refine_scales: list[PositiveInt] = Field(default_factory=lambda: [2, 1])
    """Coarse to fine: after matching at ``scale``, match again at each of these (finer) latent
    scales, starting from the previous stage's images; ``[]`` is the single-scale attack."""
    refine_lr_divisor: PositiveFloat = 3.0
    """Each refinement stage's lr is the previous stage's divided by this."""
    lr_guess: PositiveFloat | None = None
    """The peers' local learning rate as the attacker guesses it; the protocol's when unset."""
    prior: PriorOptions | None = None
    revive: bool = True
    """After each stage, redraw the images that collapsed to a flat picture and match that
    stage again (``attacks.revival``), keeping the rerun only if its loss is lower."""
    deal: Literal["sorted", "spread"] = "sorted"
    """How recovered labels (counts with no owner) are first dealt to the peers' groups: in
    sorted order, or in turn so that copies of a label go to different peers (the likelier
    grouping under i.i.d. data, ``attacks.regrouping.spread_order``)."""
    regroup: bool = True
    """With recovered labels and several peers, after each stage but the last, move (image,
    label) pairs between the peers' groups while that lowers the matching loss
    (``attacks.regrouping``): the first dealing (``deal``) is a guess, and under τ > 1 local
    steps which peer holds which label matters. Measured in ``bench/bench_curious_labels.py``."""


def scaled(distance: Objective, scales: dict[str, float]) -> Objective:
    """``distance`` on updates whose tensors are each divided by ``scales``."""

    def measure(dummy: Params, target: Params) -> Tensor:
        return distance(
            {k: dummy[k] / scales[k] for k in target}, {k: v / scales[k] for k, v in target.items()}
        )

    return measure


def tensor_scales(update: Params, normalise: str) -> dict[str, float]:
    """What each tensor of the observed update is divided by before an L2 comparison:
    its whole norm ("total": rounds weigh equally), each tensor's own ("per_tensor": early
    layers, whose gradients are orders of magnitude smaller, weigh as much as the last)."""
    norms = {k: max(float(v.norm()), 1e-30) for k, v in update.items()}
    if normalise == "per_tensor":
        return norms
    total = max(sum(n**2 for n in norms.values()) ** 0.5, 1e-30)
    return dict.fromkeys(norms, total if normalise == "total" else 1.0)


def started_from(images: Tensor, scale: int) -> Start:
    """Loads ``images``, area-downsampled to a ``scale`` latent, into a new parametrisation."""

    def load(param: Parametrization) -> None:
        param.load_state([F.interpolate(images, scale_factor=1 / scale, mode="area")])

    return load


class RoundsLoss:
    """Σ_r d(Δ_r(x), Δ_r) over the observed rounds, each normalised (see
    :func:`tensor_scales`), plus total variation: one dummy batch explains every round."""

    def __init__(
        self, target: AttackTarget, objective: str, normalise: str, tv_weight: float
    ) -> None:
        distance = OBJECTIVES.get(objective)
        self.terms = [
            MatchingLoss(t, scaled(distance, tensor_scales(t.observed_update, normalise)))
            for t in rounds_of(target)
        ]
        self.tv_weight = tv_weight

    def __call__(self, images: Tensor, labels: Tensor) -> Tensor:
        loss = self.tv_weight * total_variation(images)
        for term in self.terms:
            loss = loss + term(images, labels)
        return loss


@ATTACKS.register("curious_client")
class CuriousClient(GradientMatchingAttack):
    name = "curious_client"
    Options = CuriousClientOptions
    options: CuriousClientOptions
    default_lr = 0.1
    default_tv_weight = 0.0

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.component("objective", OBJECTIVES)
        self.make_param = self.component("parametrization", PARAMETRIZATIONS)
        self.component("optimizer", OPTIMIZERS)
        self.component("schedule", SCHEDULERS)
        if self.options.refine_scales and self.options.parametrization != "lowres":
            raise ConfigError(
                "attack.options.refine_scales needs the lowres parametrization "
                f"(got {self.options.parametrization!r}); set refine_scales: [] otherwise"
            )
        if self.options.prior is not None:
            from gradleak.priors.catalog import check_options

            check_options(self.options.prior)

    def total_iterations(self) -> int:
        """Restarts at the first scale, one run per refinement scale, then the decoder stage."""
        stages = self.config.restarts + len(self.options.refine_scales)
        prior = self.options.prior
        return self.config.iterations * stages + (prior.decoder_iterations if prior else 0)

    def loss(self, target: AttackTarget) -> RoundsLoss:
        opts = self.options
        return RoundsLoss(target, opts.objective, opts.normalise, self.tv_weight)

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

    def batch_plan(self, target: AttackTarget) -> None:
        """None: the stages chain (each starts from the last), so there is no single set of
        trials to hand over."""
        return None

    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        """Coarse to fine: the skeleton's trials once per scale, one generator throughout,
        each stage started from the previous stage's images."""
        opts = self.options
        if opts.lr_guess is not None:
            target = assume_local_lr(target, opts.lr_guess)
        labels = resolve_labels(self.config.labels, target)
        loss = self.loss(target)
        factory, _ = self.parametrization()
        generator = trial_generator()
        settings = self.loop_settings()
        start: Tensor | None = None
        best = None
        stages = [opts.scale, *opts.refine_scales]
        revivals: list[int] = []
        swaps: list[int] = []
        groups = rounds_of(target)[0].update_model.num_groups
        owned = self.config.labels == "given" or groups == 1  # each label's peer is known
        if not owned and opts.deal == "spread":
            labels = labels[spread_order(labels, groups)]
        regroup = opts.regroup and not owned
        for stage, scale in enumerate(stages):
            stage_settings = replace(settings, lr=settings.lr / opts.refine_lr_divisor**stage)

            run_stage = partial(
                self.run_trials, target, loss, labels, factory,
                ParametrizationSettings(scale=scale), stage_settings, generator=generator,
            )  # fmt: skip
            restarts = self.config.restarts if stage == 0 else 1
            begin = None if start is None else started_from(start, scale)
            best = run_stage(restarts, callback, start=begin)
            start = best.parametrization.images().detach().clamp(0, 1)
            dead = dead_images(start)
            if opts.revive and bool(dead.any()):
                # Redraw the dead images and match this stage again, the living ones carrying
                # on from their result; kept only if it matches better.
                revivals.append(int(dead.sum()))
                fresh = factory(
                    start.shape, generator, target.device, ParametrizationSettings(scale=scale)
                )
                redrawn = revived(start, dead, fresh.images().detach())
                again = run_stage(1, callback, start=started_from(redrawn, scale))
                if again.result.best_loss < best.result.best_loss:
                    best = again
                    start = best.parametrization.images().detach().clamp(0, 1)
            if regroup and stage < len(stages) - 1:
                # The next stage starts from this one's images: deal them, and their labels,
                # to the peers whose replay they fit.
                found = regrouped(loss, start, labels, groups)
                swaps.append(found.swaps)
                start, labels = start[found.order], labels[found.order]
        assert best is not None
        images = best.parametrization.images().detach().clamp(0, 1)
        extra: dict[str, Any] = {
            "rounds": len(rounds_of(target)),
            "scales": stages,
            "revived_images": revivals,
            "regroup_swaps": swaps,
        }
        if opts.prior is None:
            return reconstruction(best, images, labels, **extra)
        extra["raw_images"] = images
        began = time.perf_counter()
        if opts.prior.decoder_iterations:
            best = self._decode_stage(target, loss, labels, images, settings, callback, generator)
            images = best.parametrization.images().detach().clamp(0, 1)
        if opts.prior.refine:
            images = self._refine(images)
        extra["prior"] = {
            **opts.prior.model_dump(),
            "seconds": round(time.perf_counter() - began, 3),
        }
        return reconstruction(best, images, labels, **extra)

    def _decode_stage(
        self,
        target: AttackTarget,
        loss: RoundsLoss,
        labels: Tensor | None,
        images: Tensor,
        settings: LoopSettings,
        callback: ProgressCallback | None,
        generator: torch.Generator,
    ) -> RestartResult:
        """Match once more with the ¼-size latent decoded by the prior, from ``images``."""
        from gradleak.priors.catalog import PRIORS

        prior = self.options.prior
        assert prior is not None
        decoder = PRIORS.get(prior.name)().decoder(prior)
        assert decoder is not None  # check_options refused a decoder stage without one
        scale = int(getattr(decoder, "scale", self.options.scale))
        return self.run_trials(
            target,
            loss,
            labels,
            decoded_by(decoder.to(target.device)),
            ParametrizationSettings(scale=scale),
            replace(settings, iterations=prior.decoder_iterations, lr=prior.decoder_lr),
            1,
            callback,
            start=started_from(images, scale),
            generator=generator,
        )

    def _refine(self, images: Tensor) -> Tensor:
        """The prior's post-processing of the final images."""
        from gradleak.priors.catalog import PRIORS

        prior = self.options.prior
        assert prior is not None
        return PRIORS.get(prior.name)().refine(images, prior, self.options.scale)
