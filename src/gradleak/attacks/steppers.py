"""Optimisation steps: how one iteration moves the optimised tensors, given a loss closure.

A stepper hides whether an iteration is one gradient step (Adam, AdamW, SGD, optionally on
signed gradients), a closure-driven L-BFGS step that evaluates the loss several times (DLG), or
FedLeak's look-ahead step that evaluates the gradient at a trial point before committing. The
loop in :mod:`gradleak.attacks.optim` treats them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.registry import Registry

LossClosure = Callable[[], Tensor]
LineSearch = Literal["none", "strong_wolfe"]


@dataclass(frozen=True)
class StepSettings:
    lr: float
    signed: bool = False
    lookahead: Literal["none", "l1", "l2"] = "none"
    """Gradient regularisation (FedLeak): "l1" steps on signs (the L∞-step surrogate of an L1
    sharpness penalty), "l2" on the normalised gradient; "none" is a plain step."""
    lookahead_weight: float = 0.3
    """Weight of the look-ahead direction; the current direction gets 1 − weight."""
    lbfgs_inner: int = 20
    """L-BFGS: loss evaluations per step (torch's ``max_iter``; DLG keeps torch's default 20)."""
    lbfgs_line_search: LineSearch = "none"
    """L-BFGS: ``strong_wolfe`` searches each step's length so that it lowers the loss (torch's
    ``line_search_fn``); ``none`` takes the fixed step ``lr`` along each direction."""


def set_gradients(params: list[Tensor], loss: Tensor) -> None:
    """Set each ``params``' ``.grad`` to d loss / d it (None where the loss does not depend on
    it), as ``zero_grad(set_to_none=True)`` then ``loss.backward()`` would, but differentiating
    towards ``params`` only. ``backward`` also pushes the gradient to every other leaf in the
    graph: in a replayed update those are the model weights, whose second-order gradient no
    one reads (its share of an iteration's time was not measured on its own)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g


class Stepper(ABC):
    """Moves ``params`` by one iteration; :attr:`optimizer` is what schedules act on."""

    optimizer: torch.optim.Optimizer

    def __init__(self, params: list[Tensor], settings: StepSettings) -> None:
        self.params = params
        self.settings = settings

    @abstractmethod
    def step(self, loss_fn: LossClosure) -> float:
        """Take one step; return the loss at the point the step started from."""

    def _gradients(self, loss_fn: LossClosure) -> float:
        """Evaluate the loss, leave its gradient in ``.grad``, return its value."""
        loss = loss_fn()
        set_gradients(self.params, loss)
        return float(loss.detach())


class GradientStepper(Stepper):
    """One first-order step on the (optionally signed, optionally look-ahead) gradient."""

    def __init__(
        self, params: list[Tensor], settings: StepSettings, optimizer: torch.optim.Optimizer
    ) -> None:
        super().__init__(params, settings)
        self.optimizer = optimizer

    def _direction(self) -> list[Tensor]:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.settings.lookahead == "l2":
            norm = torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt().clamp_min(1e-12)
            return [g / norm for g in grads]
        if self.settings.lookahead == "l1" or self.settings.signed:
            # In place: each ``.grad`` is this step's own fresh tensor, read by nothing else.
            return [g.sign_() for g in grads]
        return grads

    def _set_grads(self, grads: list[Tensor]) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g

    def step(self, loss_fn: LossClosure) -> float:
        value = self._gradients(loss_fn)
        now = self._direction()
        self._set_grads(now)
        if self.settings.lookahead != "none":
            # Step to the trial point, read the direction there, come back (the optimiser's
            # moments keep the trial step, as in the authors' code) and step on the blend.
            start = [p.detach().clone() for p in self.params]
            self.optimizer.step()
            self._gradients(loss_fn)
            ahead = self._direction()
            w = self.settings.lookahead_weight
            with torch.no_grad():
                for p, s in zip(self.params, start, strict=True):
                    p.copy_(s)
            self._set_grads([(1 - w) * a + w * b for a, b in zip(now, ahead, strict=True)])
        self.optimizer.step()
        return value


class LBFGSStepper(Stepper):
    """One L-BFGS step (several closure evaluations with a curvature history), as DLG."""

    def __init__(self, params: list[Tensor], settings: StepSettings) -> None:
        super().__init__(params, settings)
        if settings.signed or settings.lookahead != "none":
            raise ConfigError("the lbfgs optimizer takes neither signed gradients nor a look-ahead")
        search = None if settings.lbfgs_line_search == "none" else settings.lbfgs_line_search
        self.optimizer = torch.optim.LBFGS(
            params, lr=settings.lr, max_iter=settings.lbfgs_inner, line_search_fn=search
        )

    def step(self, loss_fn: LossClosure) -> float:
        first: list[float] = []

        def closure() -> Tensor:
            loss = loss_fn()
            set_gradients(self.params, loss)
            first.append(float(loss.detach()))
            return loss

        self.optimizer.step(closure)  # type: ignore[arg-type]  # torch's stub wants float
        return first[0]


StepperFactory = Callable[[list[Tensor], StepSettings], Stepper]

OPTIMIZERS: Registry[StepperFactory] = Registry("optimizer")
OPTIMIZERS.register("adam")(
    lambda params, s: GradientStepper(params, s, torch.optim.Adam(params, lr=s.lr))
)
OPTIMIZERS.register("adamw")(
    lambda params, s: GradientStepper(params, s, torch.optim.AdamW(params, lr=s.lr))
)
OPTIMIZERS.register("sgd")(
    lambda params, s: GradientStepper(params, s, torch.optim.SGD(params, lr=s.lr, momentum=0.9))
)
OPTIMIZERS.register("lbfgs")(LBFGSStepper)
