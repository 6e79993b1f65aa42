"""The gradient-matching attack skeleton that DLG, Inverting Gradients, FedLeak and the curious
client specialise.

Each of them does the same thing: draw a dummy batch through a parametrisation, replay the
client's update on it, minimise a matching loss over several restarts and keep the best. What
differs is data, not control flow: the loss (objective and priors), the parametrisation, the
loop's settings, whether the labels are optimised with the images (DLG) and what is done to the
best images (FedLeak's median filter). The split follows breaching's
``OptimizationBasedAttacker``: a trial loop with selection here, one trial in ``attacks.optim``.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from gradleak.attacks.base import Attack, ProgressCallback, Reconstruction
from gradleak.attacks.batched_restarts import (
    batched_restarts_unsupported,
    choose_batched,
    worth_batching,
)
from gradleak.attacks.batched_runs import TrialPlan, run_plans
from gradleak.attacks.compiled import CompiledStep, compile_unsupported, warn_once
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import MatchingLoss, reconstruction, trial_generator
from gradleak.attacks.optim import LoopSettings, RestartResult, optimize_restarts
from gradleak.attacks.parametrizations import (
    Parametrization,
    ParametrizationFactory,
    ParametrizationSettings,
    PixelParametrization,
)
from gradleak.attacks.plateau import rule_from
from gradleak.attacks.target import AttackTarget

Loss = Callable[[Tensor, Tensor], Tensor]
"""(images, labels or soft labels) -> the matching loss to minimise."""

Start = Callable[[Parametrization], None]
"""Loads a starting point into a fresh parametrisation (the curious client's later stages)."""


class GradientMatchingAttack(Attack):
    """An attack that inverts an update by matching it; subclasses fill in the parts."""

    start_images: Tensor | None = None
    """Images (B, C, H, W) in [0, 1] every trial starts from instead of a random draw (the
    public API's ``init``); None draws them. The draw still happens, so the generator
    advances the same way either way."""

    @abstractmethod
    def loss(self, target: AttackTarget) -> Loss:
        """What is minimised: the distance to ``target.observed_update`` plus priors."""

    @abstractmethod
    def parametrization(self) -> tuple[ParametrizationFactory, ParametrizationSettings]:
        """How the dummy images are drawn and optimised."""

    @abstractmethod
    def loop_settings(self) -> LoopSettings:
        """The optimiser, schedule and step size of every trial."""

    def stopping(self, loop: LoopSettings) -> LoopSettings:
        """``loop`` with the config's plateau rule (``attack.stop_on_plateau``), if any."""
        return dataclasses.replace(loop, plateau=rule_from(self.config.stop_on_plateau))

    def fixed_labels(self, target: AttackTarget) -> Tensor | None:
        """The labels the images are matched with; None optimises soft labels jointly."""
        return resolve_labels(self.config.labels, target)

    def postprocess(self, best: RestartResult, labels: Tensor | None) -> Reconstruction:
        """The reconstruction from the best restart (FedLeak filters its images here)."""
        return reconstruction(best, best.parametrization.images(), labels)

    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        labels = self.fixed_labels(target)
        factory, settings = self.parametrization()
        best = self.run_trials(
            target,
            self.loss(target),
            labels,
            factory,
            settings,
            self.loop_settings(),
            self.config.restarts,
            callback,
        )
        if labels is None:
            labels = best.extra[0].argmax(-1)
        return self.postprocess(best, labels)

    def run_trials(
        self,
        target: AttackTarget,
        loss: Loss,
        labels: Tensor | None,
        factory: ParametrizationFactory,
        param_settings: ParametrizationSettings,
        loop: LoopSettings,
        restarts: int,
        callback: ProgressCallback | None,
        start: Start | None = None,
        generator: torch.Generator | None = None,
    ) -> RestartResult:
        """``restarts`` trials from fresh draws of one generator; the best, loaded.

        With ``labels`` None each trial also optimises soft labels (logits drawn after the
        images), returned as the best restart's only extra tensor.
        """
        loop = self.stopping(loop)
        shape = (target.num_images, *target.image_shape)
        draws = generator if generator is not None else trial_generator()
        step = self.compiled_step(loss, labels, factory) if self.config.compile else None

        def make_trial() -> tuple[Parametrization, Callable[[], Tensor], list[Tensor]]:
            param = factory(shape, draws, target.device, param_settings)
            if self.start_images is not None:
                param.start_from(self.start_images.to(target.device))
            if start is not None:
                start(param)
            if step is not None:
                return param, step.closure(param), []
            if labels is not None:
                return param, lambda: loss(param.images(), labels), []
            logits = torch.randn((target.num_images, target.num_classes), generator=draws)
            logits = logits.to(target.device).requires_grad_(True)
            return param, lambda: loss(param.images(), logits.softmax(-1)), [logits]

        if start is None and step is None and isinstance(loss, MatchingLoss) and labels is not None:
            why_not = batched_restarts_unsupported(
                loss, labels, factory, param_settings, loop, target
            )
            if choose_batched(self.config.batch_restarts, restarts, why_not, target):
                trials = [make_trial()[0] for _ in range(restarts)]
                plan = TrialPlan(loss, labels, _pixels(trials), loop, self._finisher(labels))
                return run_plans([plan], callback)[0]
        return optimize_restarts(make_trial, loop, restarts, callback)

    def _finisher(self, labels: Tensor) -> Callable[[RestartResult], Reconstruction]:
        def finish(best: RestartResult) -> Reconstruction:
            return self.postprocess(best, labels)

        return finish

    def batch_plan(self, target: AttackTarget) -> TrialPlan | None:
        """This attack's restarts on ``target``, drawn as :meth:`reconstruct` draws them, for
        a batch with other runs' (``experiments.batched_runner``); None where they cannot run
        batched, or where ``attack.batch_restarts`` (``auto``: the model's cost) says not to.
        ``plan.finish`` of the chosen restart is then what :meth:`reconstruct` returns."""
        mode = self.config.batch_restarts
        if mode == "off" or self.start_images is not None or self.config.compile:
            return None
        labels = self.fixed_labels(target)
        factory, settings = self.parametrization()
        loss = self.loss(target)
        loop = self.stopping(self.loop_settings())
        if labels is None or not isinstance(loss, MatchingLoss):
            return None
        if batched_restarts_unsupported(loss, labels, factory, settings, loop, target):
            return None
        if mode == "auto" and not worth_batching(target):
            return None
        draws = trial_generator()
        shape = (target.num_images, *target.image_shape)
        trials = [
            factory(shape, draws, target.device, settings) for _ in range(self.config.restarts)
        ]
        return TrialPlan(loss, labels, _pixels(trials), loop, self._finisher(labels))

    def compiled_step(
        self, loss: Loss, labels: Tensor | None, factory: ParametrizationFactory
    ) -> CompiledStep | None:
        """``attack.compile``'s step for these trials, or None (with one warning line) where
        compiling is not sound for them (:func:`attacks.compiled.compile_unsupported`)."""
        pixels_only = factory is PixelParametrization
        why = compile_unsupported(loss, labels, pixels_only)
        if why or labels is None or not isinstance(loss, MatchingLoss):
            warn_once(why)
            return None
        return CompiledStep(loss, labels)


def _pixels(trials: list[Parametrization]) -> list[PixelParametrization]:
    """The trials as pixel parametrisations (what batching admits; checked before)."""
    pixels = [t for t in trials if isinstance(t, PixelParametrization)]
    assert len(pixels) == len(trials)
    return pixels
