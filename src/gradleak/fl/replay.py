"""Replaying how clients would have trained: the dummy groups' updates, and a rule over them.

Both sides replay training: an attack's update model (``attacks.target``) and the malicious
client planning inside the federation (``fl.malicious``). The maths lives here, at the level
both may import: ``num_groups`` clients, each with an equal share of the batch, train from the
same weights (their uploads clipped to client DP's public norm when it is set), and a rule, when
known, combines them with the attacker's own uploads, differentiably.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradleak.fl.aggregators import Aggregator
from gradleak.fl.functional import LocalSchedule, Params, func_gradient, local_update, sgd_steps


def clip_update(update: Params, clip_norm: float) -> Params:
    """``update`` scaled to an L2 norm (over all its tensors) of at most ``clip_norm``."""
    norm = torch.stack([v.square().sum() for v in update.values()]).sum().sqrt()
    scale = (clip_norm / norm.clamp_min(1e-12)).clamp(max=1.0)
    return {k: v * scale for k, v in update.items()}


def group_updates(
    model: nn.Module,
    schedule: LocalSchedule,
    num_groups: int,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    clip_norm: float | None = None,
    create_graph: bool = True,
    functional: bool = False,
) -> list[Params]:
    """Each group's pseudo-gradient, replayed from the same weights on its share of the batch
    (the caller sets the model's train/eval mode). ``functional`` replays with
    ``torch.func.grad`` instead of autograd (the same maths), so that an outer ``torch.func``
    transform, and ``torch.compile`` around it, can differentiate through the replay."""

    def replay(group_images: Tensor, group_labels: Tensor) -> Params:
        if functional:
            grad_fn = func_gradient(model)
            return sgd_steps(grad_fn, params, buffers, group_images, group_labels, schedule)[0]
        return local_update(
            model, params, buffers, group_images, group_labels, schedule, create_graph
        )[0]

    if num_groups == 1:  # the whole batch: no index gather to differentiate through
        updates = [replay(images, labels)]
    else:
        updates = [
            replay(images[i], labels[i]) for i in torch.arange(images.shape[0]).chunk(num_groups)
        ]
    if clip_norm is None:
        return updates
    return [clip_update(update, clip_norm) for update in updates]


def combine(stacked: Tensor, rule: Aggregator | None, uploads: Tensor | None) -> Tensor:
    """The exposed ``(d,)`` update from the groups' ``(g, d)`` updates: their mean, or ``rule``
    applied to them stacked above the known ``(f, d)`` ``uploads``."""
    if rule is None or uploads is None:
        return stacked.mean(dim=0)
    rows = torch.cat([stacked, uploads.to(stacked.device, stacked.dtype)])
    return rule(rows).aggregate
