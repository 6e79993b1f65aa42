"""Independent pixel-space trials on one model, batched into one computation with ``vmap``.

Running T single-image attacks (or T restarts of one) one after another repeats T small forward
and double-backward passes whose fixed overhead dominates on small models. Stacking the trials
and mapping the per-trial loss with ``torch.func.vmap`` gives one large computation instead.
The optimisers that apply (Adam, AdamW, SGD, on signed or plain gradients) work elementwise and
the trials' losses are summed, so each trial follows the path it would alone (up to the last
bits of batched kernels); the best iterate is kept per trial, on the device, without a host
synchronisation per iteration (the loss is read back only at logging steps). A trial whose
loss turns NaN or Inf stops improving and keeps its best point, as a diverged sequential trial
does; Ctrl-C ends all of them with their best points kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from gradleak.attacks.base import ProgressCallback
from gradleak.attacks.objectives import Objective
from gradleak.attacks.optim import SCHEDULERS, LoopSettings
from gradleak.attacks.plateau import PlateauWatch
from gradleak.attacks.regularizers import total_variation
from gradleak.attacks.steppers import OPTIMIZERS, GradientStepper
from gradleak.fl.functional import Params, cross_entropy, forward

TrialLoss = Callable[..., Tensor]
"""``(images (B, C, H, W), *one trial's slice of the trial arguments) -> scalar loss``, written
with ``torch.func``-safe operations (no autograd ``create_graph``: the replay's functional path)."""


@dataclass
class BatchedResult:
    images: Tensor
    """(T, B, C, H, W) best images per trial (clamped to [0, 1] when boxed)."""
    best_losses: Tensor
    """(T,) best matching loss per trial (inf for a trial that never had a finite one)."""
    iterations: int
    trace: list[tuple[int, float]] = field(default_factory=list)
    """(iteration, lowest current loss over the live trials) at the logging steps."""
    diverged: Tensor | None = None
    """(T,) whether each trial's loss turned NaN or Inf."""
    interrupted: bool = False
    logged: list[tuple[int, Tensor]] = field(default_factory=list)
    """(iteration, (T,) current losses, NaN for a diverged or stopped trial) at the logging
    steps: the trace of any subset of the trials (one run's restarts among several runs')."""
    stopped_at: Tensor | None = None
    """(T,) iterations each trial ran: fewer than ``iterations`` where the plateau rule stopped
    it (``LoopSettings.plateau``), as the sequential loop would report it."""

    def trace_of(self, trials: slice) -> list[tuple[int, float]]:
        """The lowest live loss of ``trials`` at each logging step where one was alive."""
        trace = []
        for step, losses in self.logged:
            live = losses[trials]
            live = live[~live.isnan()]
            if live.numel():
                trace.append((step, float(live.min())))
        return trace


def elementwise_unsupported(settings: LoopSettings) -> str:
    """Why these loop settings cannot run batched ("" when they can): the optimiser must act
    on each element alone, so that stacking trials does not couple them."""
    if settings.lookahead != "none":
        return "the look-ahead step evaluates a trial point per step"
    probe = OPTIMIZERS.get(settings.optimizer)(
        [torch.zeros(1, requires_grad=True)], settings.step_settings()
    )
    if not isinstance(probe, GradientStepper):
        return f"the {settings.optimizer} optimizer couples all elements (curvature history)"
    return ""


def optimize_trials(
    trial_loss: TrialLoss,
    starts: Tensor,
    settings: LoopSettings,
    trial_args: tuple[object, ...] = (),
    box: bool = True,
    callback: ProgressCallback | None = None,
) -> BatchedResult:
    """Minimise ``trial_loss`` for T trials at once from ``starts`` (T, B, C, H, W); every
    ``trial_args`` entry (a tensor or a dict of tensors) has a leading trial dimension T.
    ``callback`` gets (trials × iterations done, lowest current loss), so a progress bar that
    counts restarts one after another ends at the same count."""
    trials = starts.shape[0]
    reason = elementwise_unsupported(settings)
    if reason:
        raise ValueError(f"batched trials need an elementwise optimiser: {reason}")

    def total_loss(pixels: Tensor) -> tuple[Tensor, Tensor]:
        losses = vmap(trial_loss)(pixels, *trial_args)
        return losses.sum(), losses

    # The outer derivative must also be a torch.func transform: plain autograd does not see
    # through the inner ``grad`` of the replay.
    loss_gradient = grad(total_loss, has_aux=True)
    pixels = starts.detach().clone().requires_grad_(True)
    stepper = OPTIMIZERS.get(settings.optimizer)([pixels], settings.step_settings())
    optimizer = stepper.optimizer
    scheduler = SCHEDULERS.get(settings.schedule)(optimizer, settings.iterations)
    device = starts.device
    best_losses = torch.full((trials,), math.inf, device=device)
    best = pixels.detach().clone()
    alive = torch.ones(trials, dtype=torch.bool, device=device)
    # Trials the plateau rule has stopped: frozen like diverged ones, their best kept.
    running = torch.ones(trials, dtype=torch.bool, device=device)
    stopped_at = torch.full((trials,), settings.iterations, device=device)
    watch = PlateauWatch(settings.plateau) if settings.plateau is not None else None
    per_trial = (trials,) + (1,) * (starts.ndim - 1)
    result = BatchedResult(best, best_losses, 0)
    try:
        for step in range(settings.iterations):
            direction, losses = loss_gradient(pixels.detach())
            alive = alive & torch.isfinite(losses)
            active = alive & running
            improved = active & (losses < best_losses)
            best_losses = torch.where(improved, losses, best_losses)
            best = torch.where(improved.view(per_trial), pixels.detach(), best)
            direction = torch.where(active.view(per_trial), direction, torch.zeros_like(direction))
            pixels.grad = direction.sign() if settings.signed else direction
            optimizer.step()
            scheduler.step()
            if box:
                with torch.no_grad():
                    pixels.clamp_(0, 1)
            result.iterations = step + 1
            if step % settings.log_every == 0 or step + 1 == settings.iterations:
                live = losses[active]
                if live.numel() == 0:
                    break  # every trial diverged or stopped: nothing left to improve
                value = float(live.min())
                result.trace.append((step, value))
                nan = torch.full_like(losses, math.nan)
                result.logged.append((step, torch.where(active, losses, nan).detach()))
                if callback is not None:
                    callback(trials * (step + 1), value)
                if watch is not None:
                    stalled = active & watch.stalled(step, best_losses)
                    stopped_at = torch.where(stalled, step + 1, stopped_at)
                    running = running & ~stalled
                    if not bool((alive & running).any()):
                        break
    except KeyboardInterrupt:
        result.interrupted = True
    result.images = best.clamp(0, 1) if box else best
    result.best_losses, result.diverged = best_losses, ~alive
    result.stopped_at = stopped_at
    return result


def invert_trials(
    model: nn.Module,
    params: Params,
    buffers: Params,
    labels: Tensor,
    observed: Params,
    image_shape: tuple[int, int, int],
    objective: Objective,
    settings: LoopSettings,
    tv_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> BatchedResult:
    """Invert T different observed FedSGD gradients on one model at once: ``labels`` is (T, B),
    every ``observed`` tensor has a leading trial dimension T. Returns each trial's best images.
    (Restarts of one attack go through :mod:`attacks.batched_restarts`, which replays any update
    the target describes.)"""
    trials, batch = labels.shape
    params = {k: v.detach() for k, v in params.items()}
    # Per-trial buffers: BatchNorm updates them in place in train mode.
    stacked_buffers = {k: v.detach().expand(trials, *v.shape).clone() for k, v in buffers.items()}

    def trial_loss(images: Tensor, trial_labels: Tensor, bufs: Params, target: Params) -> Tensor:
        def batch_loss(p: Params, b: Params) -> Tensor:
            return cross_entropy(forward(model, p, b, images), trial_labels)

        dummy = grad(batch_loss)(params, {k: v.clone() for k, v in bufs.items()})
        return objective(dummy, target) + tv_weight * total_variation(images)

    starts = torch.rand((trials, batch, *image_shape), generator=generator).to(labels.device)
    return optimize_trials(
        trial_loss, starts, settings, (labels, stacked_buffers, observed), box=True
    )
