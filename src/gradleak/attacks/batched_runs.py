"""One run's restarts, or several runs' attacks, optimised as one ``vmap``-ped batch of trials.

A :class:`TrialPlan` is what an attack has ready just before it would optimise: its loss, its
fixed labels and its restarts' starting draws (drawn exactly as sequential restarts draw them).
:func:`run_plans` optimises the trials of one plan, or of several compatible plans, in one
:func:`attacks.batched.optimize_trials` call, and hands each plan back the restart it would
have chosen alone: the one with the lowest matching loss among its own trials.

Several plans are compatible when they differ only in their tensors: the same architecture
(module structure and parameter shapes), the same replay (local schedule, groups, train mode,
clipping), objective, priors and loop, and the same label and image shapes. A sweep over seeds
of one small attack is the case this is for (``experiments.batched_runner``): each trial then
carries its own run's weights, buffers, observed update and labels as ``vmap`` arguments, so
nothing of one run enters another's loss. One plan keeps its tensors out of the mapping: they
are the same for every trial, and mapping them would turn shared weights into per-trial ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from gradleak.attacks.base import ProgressCallback, Reconstruction
from gradleak.attacks.batched import BatchedResult, optimize_trials
from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.optim import LoopResult, LoopSettings, RestartResult
from gradleak.attacks.parametrizations import PixelParametrization
from gradleak.attacks.target import AttackTarget
from gradleak.fl.functional import Params


@dataclass
class TrialPlan:
    """A run's restarts, drawn and ready to optimise; ``finish`` turns the chosen restart
    into the attack's reconstruction (its post-processing included)."""

    loss: MatchingLoss
    labels: Tensor
    trials: list[PixelParametrization]
    loop: LoopSettings
    finish: Callable[[RestartResult], Reconstruction]


@runtime_checkable
class BatchableAttack(Protocol):
    """An attack that can hand over its trials instead of optimising them itself."""

    def batch_plan(self, target: AttackTarget) -> TrialPlan | None:
        """The plan, or None where this attack on this target cannot run batched."""


def _shapes(tensors: Params) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    return tuple((name, tuple(t.shape), t.dtype) for name, t in tensors.items())


def batch_key(plan: TrialPlan) -> tuple[object, ...]:
    """What must be equal for plans to share one batch (compared with ``==``)."""
    target = plan.loss.target
    update = target.update_model
    return (
        repr(update.model),  # the module structure, activations included
        _shapes(target.parameters),
        _shapes(target.buffers),
        _shapes(target.observed_update),
        update.schedule,
        update.num_groups,
        update.train_mode,
        update.clip_norm,
        plan.loss.objective,
        plan.loss.tv_weight,
        plan.loop,
        tuple(plan.labels.shape),
        tuple(target.image_shape),
        str(target.device),
        plan.trials[0].box,
    )


def group_plans(plans: Sequence[TrialPlan]) -> list[list[int]]:
    """Indices of ``plans`` in groups that can share a batch, in first-seen order."""
    groups: list[tuple[tuple[object, ...], list[int]]] = []
    for index, plan in enumerate(plans):
        key = batch_key(plan)
        for seen, members in groups:
            if seen == key:
                members.append(index)
                break
        else:
            groups.append((key, [index]))
    return [members for _, members in groups]


def _per_trial(tensors: Sequence[Params], counts: Sequence[int]) -> Params:
    """Each run's tensors repeated once per trial of that run, stacked along a trial dim."""
    return {
        name: torch.cat(
            [
                t[name].detach().expand(n, *t[name].shape)
                for t, n in zip(tensors, counts, strict=True)
            ]
        )
        for name in tensors[0]
    }


def _optimize(plans: Sequence[TrialPlan], callback: ProgressCallback | None) -> BatchedResult:
    first = plans[0]
    starts = torch.cat([torch.stack([t.pixels.detach() for t in p.trials]) for p in plans])
    if len(plans) == 1:

        def own_loss(images: Tensor) -> Tensor:
            return first.loss(images, first.labels, functional=True)

        return optimize_trials(own_loss, starts, first.loop, box=first.trials[0].box,
                               callback=callback)  # fmt: skip
    counts = [len(p.trials) for p in plans]
    targets = [p.loss.target for p in plans]
    labels = torch.cat(
        [p.labels.expand(n, *p.labels.shape) for p, n in zip(plans, counts, strict=True)]
    )
    args = (
        labels,
        _per_trial([{k: v.detach() for k, v in t.parameters.items()} for t in targets], counts),
        _per_trial([t.buffers for t in targets], counts),
        _per_trial([t.observed_update for t in targets], counts),
    )

    def trial_loss(
        images: Tensor, trial_labels: Tensor, params: Params, buffers: Params, observed: Params
    ) -> Tensor:
        # Buffers are copied per call: a replay may write into them (never in the
        # configurations batch_key admits, but the copy keeps the trials apart regardless).
        own_buffers = {k: v.clone() for k, v in buffers.items()}
        return first.loss.replayed(images, trial_labels, params, own_buffers, observed, True)

    return optimize_trials(
        trial_loss, starts, first.loop, args, box=first.trials[0].box, callback=callback
    )


def _chosen(plan: TrialPlan, batched: BatchedResult, trials: slice) -> RestartResult:
    """The plan's best restart among its own trials, as sequential restarts would report it."""
    best_losses = batched.best_losses[trials]
    losses = [float(v) for v in best_losses]
    chosen = min(
        range(len(losses)), key=lambda i: (not bool(torch.isfinite(best_losses[i])), losses[i])
    )
    images = batched.images[trials][chosen]
    holder = plan.trials[chosen]
    holder.start_from(images)
    diverged = batched.diverged is not None and bool(batched.diverged[trials][chosen])
    ran = batched.iterations
    if batched.stopped_at is not None:
        ran = min(ran, int(batched.stopped_at[trials][chosen]))
    result = LoopResult(
        [images.clone()],
        losses[chosen],
        ran,
        batched.trace_of(trials),
        diverged=diverged,
        interrupted=batched.interrupted,
        plateaued=ran < plan.loop.iterations,
    )
    return RestartResult(holder, [], result, chosen, losses)


def run_plans(
    plans: Sequence[TrialPlan], callback: ProgressCallback | None = None
) -> list[RestartResult]:
    """Optimise the trials of compatible ``plans`` as one batch; each plan's chosen restart,
    in order. Raises ValueError for plans that :func:`group_plans` would keep apart."""
    if not plans:
        return []
    if len(group_plans(plans)) != 1:
        raise ValueError("these plans differ in more than their tensors: group_plans first")
    batched = _optimize(plans, callback)
    chosen, offset = [], 0
    for plan in plans:
        trials = slice(offset, offset + len(plan.trials))
        chosen.append(_chosen(plan, batched, trials))
        offset = trials.stop
    return chosen
