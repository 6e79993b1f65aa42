"""Whether an attack's restarts run side by side as one ``vmap``-ped batch
(``attack.batch_restarts``; the batch itself is :mod:`attacks.batched_runs`).

Restarts differ only in their starting draw, so R of them can be one computation of R trials
(:func:`attacks.batched.optimize_trials`) instead of R loops one after another: the same draws
in the same order, the same loss (the target's replay through ``torch.func``, so FedAvg's
unrolled steps, several groups and client clipping are covered), the same selection by lowest
matching loss. It applies where the trials cannot couple and the replay is functional: pixels
with fixed labels, an elementwise optimiser, no BatchNorm-statistics prior, no BatchNorm layer
updating its running statistics in train mode (an in-place update of one shared buffer from R
trials), no later-stage start.

``auto`` batches where it wins. On a GPU it always does; on a CPU at one thread batching lowers
fixed per-operation overhead but turns the per-trial weight gradients into grouped
convolutions, so it wins on small problems and loses on larger ones
(``bench/bench_batched_restarts.py`` prints both timings and the decision). The rule is the model's
forward cost per trial: batched below :data:`CPU_MAX_FLOPS`.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from gradleak.attacks.batched import elementwise_unsupported
from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.optim import LoopSettings
from gradleak.attacks.parametrizations import (
    ParametrizationFactory,
    ParametrizationSettings,
    PixelParametrization,
)
from gradleak.attacks.target import AttackTarget, rounds_of
from gradleak.fl.functional import forward

BatchRestarts = Literal["auto", "on", "off"]

CPU_MAX_FLOPS = 4e7
"""Forward FLOPs per trial (one pass of the trial's batch) up to which ``auto`` batches on a
CPU: set between ConvNet-16-small at B=1 (about 2·10^7, where batching won in development
probes) and at B=8 (about 1.6·10^8, where it lost); ``bench/bench_batched_restarts.py``
re-measures both sides on any machine."""


def batched_restarts_unsupported(
    loss: object,
    labels: Tensor | None,
    factory: ParametrizationFactory,
    param_settings: ParametrizationSettings,
    loop: LoopSettings,
    target: AttackTarget,
) -> str:
    """Why these restarts cannot run as one batch, or "" when they can."""
    if not isinstance(loss, MatchingLoss):
        return "the attack's loss is not a replayed-update matching loss"
    if labels is None:
        return "soft labels are optimised jointly"
    if factory is not PixelParametrization:
        return "the parametrisation is not plain pixels"
    if loss.batchnorm is not None:
        return "the BatchNorm-statistics prior records statistics by hooks"
    if len(rounds_of(target)) > 1:
        return "several rounds are matched jointly"
    if target.update_model.train_mode and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in target.model.modules()
    ):
        return "BatchNorm in train mode updates shared running statistics in place"
    return elementwise_unsupported(loop)


def forward_flops(target: AttackTarget) -> float:
    """FLOPs of one forward pass of the target's batch (PyTorch's own counter)."""
    images = torch.zeros((target.num_images, *target.image_shape), device=target.device)
    buffers = {k: v.clone() for k, v in target.buffers.items()}
    params = {k: v.detach() for k, v in target.parameters.items()}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(target.model, params, buffers, images)
    return float(counter.get_total_flops())


def worth_batching(target: AttackTarget) -> bool:
    """``auto``'s rule: always on a GPU, on a CPU below :data:`CPU_MAX_FLOPS` per trial."""
    return target.device.type != "cpu" or forward_flops(target) <= CPU_MAX_FLOPS


def choose_batched(
    mode: BatchRestarts,
    restarts: int,
    why_not: str,
    target: AttackTarget,
) -> bool:
    """Whether to batch; ``on`` where it cannot apply says why in one warning line."""
    if mode == "off" or restarts == 1:
        return False
    if why_not:
        if mode == "on":
            warnings.warn(
                f"attack.batch_restarts: running restarts one after another ({why_not})",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    return mode == "on" or worth_batching(target)
