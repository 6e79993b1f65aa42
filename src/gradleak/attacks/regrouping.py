"""Regrouping a dummy batch across the peers it stands for, by the matching loss.

The curious client's dummy batch stands for several peers' batches: its update model replays
each consecutive group of images as one peer's local training. Recovered labels come from the
aggregate as counts, so the attacker knows *which* labels the round held but not *which peer*
held them; they are dealt in sorted order. With one plain gradient step that is harmless (the
mean update does not depend on the grouping), but with τ local steps each peer's trajectory
depends on its own images and labels, and a wrong dealing leaves a floor on the matching loss
that the optimiser fills by distorting the images (measured on the shipped curious-client case,
seed 0: the true images regrouped into the sorted dealing match at 1 − cos = 0.016, not 0).

After a matching stage the images are close enough to say where they belong: moving an
(image, label) pair between two groups is a permutation the attacker can score with its own
loss, on its own dummy batch. ``regrouped`` swaps pairs greedily while the loss falls. Nothing
here sees the peers' data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

BatchLoss = Callable[[Tensor, Tensor], Tensor]
"""The attack's loss of a dummy batch and its labels (the update model groups it in order)."""

MIN_GAIN = 1e-4
"""Relative loss decrease below which a swap is not taken: the float noise of one replay is far
smaller, and a smaller gain is not worth reordering the batch for."""


@dataclass(frozen=True)
class Regrouping:
    """The permutation found (``order[i]`` is the old index now at position i), the loss before
    and after, and how many swaps were taken."""

    order: Tensor
    loss_before: float
    loss_after: float
    swaps: int


def cross_group_pairs(size: int, num_groups: int) -> list[tuple[int, int]]:
    """Every pair of positions (i < j) of a batch of ``size`` that lie in different groups, the
    groups being ``torch.chunk``'s consecutive shares (as the update model splits the batch)."""
    group_of = torch.cat(
        [torch.full((len(c),), g) for g, c in enumerate(torch.arange(size).chunk(num_groups))]
    )
    return [
        (i, j)
        for i in range(size)
        for j in range(i + 1, size)
        if int(group_of[i]) != int(group_of[j])
    ]


def spread_order(labels: Tensor, num_groups: int) -> Tensor:
    """A permutation of ``labels`` that deals them to the groups in turn (the first label to the
    first group, the second to the second, …), so that copies of one label land with different
    peers. Under i.i.d. sampling every arrangement of the batch's labels is equally likely, so a
    grouping is as likely as the number of orders within its groups, ∏ 4!/∏ m!: largest when
    each peer's labels are distinct, smallest for the sorted dealing, which stacks copies."""
    chunks = torch.arange(labels.shape[0]).chunk(num_groups)
    by_label = torch.sort(labels, stable=True).indices.tolist()
    order = [0] * labels.shape[0]
    filled = [0] * len(chunks)
    group = 0
    for index in by_label:
        while filled[group] == len(chunks[group]):
            group = (group + 1) % len(chunks)
        order[int(chunks[group][filled[group]])] = index
        filled[group] += 1
        group = (group + 1) % len(chunks)
    return torch.tensor(order, device=labels.device)


def regrouped(
    loss: BatchLoss, images: Tensor, labels: Tensor, num_groups: int, max_passes: int = 4
) -> Regrouping:
    """Greedy first-improvement swaps of (image, label) pairs between groups, at most
    ``max_passes`` sweeps over all cross-group pairs, until a sweep takes no swap. Swapping two
    pairs with the same label between groups still changes both groups' replays, so every
    cross-group pair is a candidate."""
    images = images.detach()
    order = torch.arange(images.shape[0], device=labels.device)

    def score(permutation: Tensor) -> float:
        with torch.enable_grad():  # the replay differentiates the model's loss inside
            return float(loss(images[permutation], labels[permutation]).detach())

    before = current = score(order)
    swaps = 0
    pairs = cross_group_pairs(images.shape[0], num_groups) if num_groups > 1 else []
    for _ in range(max_passes if pairs else 0):
        taken = 0
        for i, j in pairs:
            candidate = order.clone()
            candidate[i], candidate[j] = order[j], order[i]
            value = score(candidate)
            if value < current * (1 - MIN_GAIN):
                order, current = candidate, value
                taken += 1
        swaps += taken
        if not taken:
            break
    return Regrouping(order=order, loss_before=before, loss_after=current, swaps=swaps)
