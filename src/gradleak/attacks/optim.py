"""The optimisation loop shared by the iterative attacks, and restarts around it.

It owns what every attack needs and none should rewrite: optimiser and schedule construction,
the projection after each step, keeping the best iterate over *every* loss evaluation (L-BFGS
and look-ahead steps evaluate several points per iteration), stopping on a NaN/Inf loss
(divergence), on Ctrl-C (interruption) or on a plateau of the best loss (``attacks.plateau``,
when asked) without losing the best reconstruction so far, and reporting progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from gradleak.attacks.base import ProgressCallback
from gradleak.attacks.parametrizations import Parametrization
from gradleak.attacks.plateau import PlateauRule, PlateauWatch
from gradleak.attacks.steppers import OPTIMIZERS, LineSearch, StepSettings
from gradleak.registry import Registry

SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]

SCHEDULERS: Registry[SchedulerFactory] = Registry("learning-rate schedule")
SCHEDULERS.register("constant")(lambda opt, n: torch.optim.lr_scheduler.ConstantLR(opt, 1.0, 1))
SCHEDULERS.register("cosine")(lambda opt, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, n))
SCHEDULERS.register("multistep")(
    # Inverting Gradients: decay by 10 at 3/8, 5/8 and 7/8 of the budget.
    lambda opt, n: torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(n * 3 / 8), int(n * 5 / 8), int(n * 7 / 8)], gamma=0.1
    )
)


@dataclass(frozen=True)
class LoopSettings:
    iterations: int
    lr: float
    optimizer: str = "adam"
    schedule: str = "multistep"
    signed: bool = True
    log_every: int = 10
    lookahead: Literal["none", "l1", "l2"] = "none"
    lookahead_weight: float = 0.3
    lbfgs_inner: int = 20
    lbfgs_line_search: LineSearch = "none"
    plateau: PlateauRule | None = None
    """Stop a trial early when its best loss stalls (checked at logging steps); None never."""

    def step_settings(self) -> StepSettings:
        return StepSettings(
            self.lr,
            self.signed,
            self.lookahead,
            self.lookahead_weight,
            self.lbfgs_inner,
            self.lbfgs_line_search,
        )


@dataclass
class LoopResult:
    best_state: list[Tensor]
    best_loss: float
    iterations: int
    trace: list[tuple[int, float]] = field(default_factory=list)
    diverged: bool = False
    interrupted: bool = False
    plateaued: bool = False
    """Stopped by ``LoopSettings.plateau`` before the budget ran out."""


class _Diverged(Exception):
    """Raised inside a loss evaluation that returned NaN or Inf."""


class _BestKeeper:
    """Wraps the loss: every evaluation is checked for divergence and the best point kept."""

    def __init__(self, parametrization: Parametrization, extra: list[Tensor], result: LoopResult):
        self.parametrization, self.extra, self.result = parametrization, extra, result

    def snapshot(self) -> list[Tensor]:
        return self.parametrization.state() + [e.detach().clone() for e in self.extra]

    def wrap(self, loss_fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
        def evaluate() -> Tensor:
            loss = loss_fn()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise _Diverged
            if value < self.result.best_loss:
                self.result.best_loss, self.result.best_state = value, self.snapshot()
            return loss

        return evaluate


def restore(parametrization: Parametrization, extra: list[Tensor], state: list[Tensor]) -> None:
    """Load a state kept by :func:`optimize` back into the parametrisation and extra tensors."""
    count = len(state) - len(extra)
    parametrization.load_state(state[:count])
    with torch.no_grad():
        for e, s in zip(extra, state[count:], strict=True):
            e.copy_(s)


def optimize(
    parametrization: Parametrization,
    loss_fn: Callable[[], Tensor],
    settings: LoopSettings,
    callback: ProgressCallback | None = None,
    extra_params: list[Tensor] | None = None,
    offset: int = 0,
) -> LoopResult:
    """Minimise ``loss_fn`` over the parametrisation's tensors (and ``extra_params``, such as
    DLG's soft labels). ``offset`` shifts the iteration numbers reported to ``callback``."""
    extra = extra_params or []
    params = parametrization.parameters() + extra
    stepper = OPTIMIZERS.get(settings.optimizer)(params, settings.step_settings())
    scheduler = SCHEDULERS.get(settings.schedule)(stepper.optimizer, settings.iterations)
    result = LoopResult([], math.inf, 0)
    keeper = _BestKeeper(parametrization, extra, result)
    result.best_state = keeper.snapshot()
    evaluate = keeper.wrap(loss_fn)
    watch = PlateauWatch(settings.plateau) if settings.plateau is not None else None
    try:
        for step in range(settings.iterations):
            value = stepper.step(evaluate)
            scheduler.step()
            parametrization.project()
            result.iterations = step + 1
            if step % settings.log_every == 0 or step + 1 == settings.iterations:
                result.trace.append((offset + step, value))
                if callback is not None:
                    callback(offset + step + 1, value)
                if (
                    watch is not None
                    and watch.stalled(step, torch.tensor([result.best_loss])).all()
                ):
                    result.plateaued = step + 1 < settings.iterations
                    break
    except _Diverged:
        result.diverged = True
    except KeyboardInterrupt:
        result.interrupted = True
    return result


@dataclass
class RestartResult:
    """The restart whose best matching loss was lowest, its tensors already loaded."""

    parametrization: Parametrization
    extra: list[Tensor]
    result: LoopResult
    restart: int
    losses: list[float]


def optimize_restarts(
    make_trial: Callable[[], tuple[Parametrization, Callable[[], Tensor], list[Tensor]]],
    settings: LoopSettings,
    restarts: int,
    callback: ProgressCallback | None = None,
) -> RestartResult:
    """Run ``restarts`` independent trials from fresh initialisations and keep the best.

    ``make_trial`` returns a new (parametrisation, loss, extra tensors). A diverged trial keeps
    its best point and still competes; an interrupted one ends the restarts.
    """
    best: RestartResult | None = None
    losses: list[float] = []
    for restart in range(restarts):
        param, loss_fn, extra = make_trial()
        result = optimize(param, loss_fn, settings, callback, extra, restart * settings.iterations)
        losses.append(result.best_loss)
        if best is None or result.best_loss < best.result.best_loss:
            restore(param, extra, result.best_state)
            best = RestartResult(param, extra, result, restart, losses)
        if result.interrupted:
            break
    assert best is not None
    return best
