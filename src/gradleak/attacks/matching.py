"""The loss a gradient-matching attack minimises, and the reconstruction it returns.

Every optimisation attack does the same thing per evaluation: replay the client's update on the
dummy images (through the target's update model, so FedAvg's local steps are unrolled), compare
it with the observed update, and add priors. Written once here; attacks choose the parts.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradleak.attacks.base import Reconstruction
from gradleak.attacks.objectives import Objective
from gradleak.attacks.optim import RestartResult
from gradleak.attacks.regularizers import BatchNormMatching, total_variation
from gradleak.attacks.target import AttackTarget
from gradleak.fl.functional import Params


@dataclass
class MatchingLoss:
    """objective(update(images, labels), observed) + tv·TV(images) + bn·BN-statistics."""

    target: AttackTarget
    objective: Objective
    tv_weight: float = 0.0
    batchnorm: BatchNormMatching | None = None
    bn_weight: float = 0.0
    _params: Params = field(init=False)
    _observed: Params = field(init=False)

    def __post_init__(self) -> None:
        self._params = {k: v.detach() for k, v in self.target.parameters.items()}
        self._observed = {k: v.detach() for k, v in self.target.observed_update.items()}

    def __call__(self, images: Tensor, labels: Tensor, functional: bool = False) -> Tensor:
        """The loss; ``functional`` replays the update by ``torch.func`` (for a compiled step,
        :mod:`attacks.compiled`), otherwise by autograd with a graph to differentiate."""
        return self.replayed(
            images, labels, self._params, self.target.buffers, self._observed, functional
        )

    def replayed(
        self,
        images: Tensor,
        labels: Tensor,
        params: Params,
        buffers: Params,
        observed: Params,
        functional: bool = False,
    ) -> Tensor:
        """The loss with the target's weights, buffers and observed update passed in: what
        several runs batched together (:mod:`attacks.batched_runs`) map over, each trial
        carrying its own run's tensors through the same replay, objective and priors."""
        hooks = self.batchnorm if self.batchnorm is not None else nullcontext()
        with hooks:
            dummy = self.target.update_model(params, buffers, images, labels, functional=functional)
        loss = self.objective(dummy, observed)
        if self.tv_weight:
            loss = loss + self.tv_weight * total_variation(images)
        if self.batchnorm is not None and self.bn_weight:
            loss = loss + self.bn_weight * self.batchnorm.penalty()
        return loss


def reconstruction(
    best: RestartResult, images: Tensor, labels: Tensor | None, **extra: Any
) -> Reconstruction:
    """Package the best restart's images (clamped to [0, 1]) and its optimisation record."""
    result = best.result
    return Reconstruction(
        images=images.detach().clamp(0, 1),
        labels=None if labels is None else labels.detach(),
        iterations=result.iterations,
        best_loss=result.best_loss,
        trace=result.trace,
        diverged=result.diverged,
        interrupted=result.interrupted,
        extra={
            "best_restart": best.restart,
            "restart_losses": best.losses,
            **({"stopped_on_plateau": True} if result.plateaued else {}),
            **extra,
        },
    )


def trial_generator() -> torch.Generator:
    """A generator for initialisations, derived from the run's seed (set by the runner), so
    that the same config and seed give the same reconstruction."""
    return torch.Generator().manual_seed(int(torch.initial_seed()) % 2**63)
