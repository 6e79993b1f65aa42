"""Independent pixel-space trials on one model, batched into one computation with ``vmap``.

Running T single-image attacks (or T restarts) one after another repeats T small forward and
double-backward passes whose fixed overhead dominates on small models. Stacking the trials and
mapping the per-trial gradient with ``torch.func.vmap`` gives one large computation instead.
The optimiser works elementwise (Adam on signed gradients) and the trials' losses are summed,
so each trial follows exactly the path it would alone; the best iterate is kept per trial.
Limitations: pixel parametrisation, one local step (FedSGD) and hard labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from gradleak.attacks.objectives import Objective
from gradleak.attacks.optim import SCHEDULERS, LoopSettings
from gradleak.attacks.regularizers import total_variation
from gradleak.fl.functional import Params, cross_entropy


@dataclass
class BatchedResult:
    images: Tensor
    """(T, B, C, H, W) best images per trial, in [0, 1]."""
    best_losses: Tensor
    """(T,) best matching loss per trial."""
    iterations: int


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
    """Invert T observed gradients at once: ``labels`` is (T, B), every ``observed`` tensor has
    a leading trial dimension T. Returns the best images of each trial."""
    trials, batch = labels.shape
    device = labels.device
    params = {k: v.detach() for k, v in params.items()}
    stacked_buffers = {k: v.detach().expand(trials, *v.shape).clone() for k, v in buffers.items()}

    def trial_loss(images: Tensor, trial_labels: Tensor, bufs: Params, target: Params) -> Tensor:
        def batch_loss(p: Params, b: Params) -> Tensor:
            # Buffers are an argument: BatchNorm updates them in place in train mode.
            return cross_entropy(functional_call(model, {**p, **b}, (images,)), trial_labels)

        dummy = grad(batch_loss)(params, {k: v.clone() for k, v in bufs.items()})
        return objective(dummy, target) + tv_weight * total_variation(images)

    def total_loss(pixels: Tensor) -> tuple[Tensor, Tensor]:
        losses = vmap(trial_loss)(pixels, labels, stacked_buffers, observed)
        return losses.sum(), losses

    # The outer derivative must also be a torch.func transform: plain autograd does not see
    # through the inner ``grad``.
    loss_gradient = grad(total_loss, has_aux=True)
    pixels = torch.rand((trials, batch, *image_shape), generator=generator).to(device)
    pixels.requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=settings.lr)
    scheduler = SCHEDULERS.get(settings.schedule)(optimizer, settings.iterations)
    best_losses = torch.full((trials,), math.inf, device=device)
    best = pixels.detach().clone()
    for _ in range(settings.iterations):
        direction, losses = loss_gradient(pixels.detach())
        improved = torch.isfinite(losses) & (losses < best_losses)
        best_losses = torch.where(improved, losses, best_losses)
        best[improved] = pixels.detach()[improved]
        pixels.grad = direction.sign() if settings.signed else direction
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
    return BatchedResult(best.clamp(0, 1), best_losses, settings.iterations)
