"""Regrouping a dummy batch across the peers it stands for (attacks.regrouping), on real
CIFAR-10 images: the true images dealt to the wrong peers are put back by the loss alone."""

from __future__ import annotations

from dataclasses import replace

import torch

from gradleak.attacks.base import ATTACKS
from gradleak.attacks.curious_client import RoundsLoss
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.regrouping import cross_group_pairs, regrouped, spread_order
from gradleak.attacks.target import AttackTarget, UpdateModel, target_from_batch
from gradleak.config import AttackConfig
from gradleak.fl.functional import LocalSchedule


def peers_target(net, images, labels, groups: int, schedule: LocalSchedule) -> AttackTarget:
    """The peers' mean update of ``groups`` peers, each training on its consecutive share."""
    single = target_from_batch(net, images, labels, schedule)
    peers = UpdateModel(net, schedule, num_groups=groups)
    observed = peers(single.parameters, single.buffers, images, labels, create_graph=False)
    return replace(single, update_model=peers, observed_update=observed)


def group_sets(labels: torch.Tensor, images: torch.Tensor, groups: int) -> set[frozenset]:
    """Each group as a set of (label, image fingerprint): the grouping, up to group order."""
    keys = [(int(y), round(float(x.sum()), 3)) for x, y in zip(images, labels, strict=True)]
    share = len(keys) // groups
    return {frozenset(keys[g * share : (g + 1) * share]) for g in range(groups)}


def test_cross_group_pairs_are_the_pairs_in_different_chunks() -> None:
    pairs = cross_group_pairs(6, 3)
    assert len(pairs) == 12  # 15 pairs, less the 3 within a group of two
    assert (0, 1) not in pairs and (0, 2) in pairs and (4, 5) not in pairs
    assert cross_group_pairs(5, 1) == []


def test_spread_dealing_gives_copies_of_a_label_to_different_peers() -> None:
    labels = torch.tensor([1, 1, 3, 3, 5, 6, 6, 6, 7, 8, 8, 9])
    dealt = labels[spread_order(labels, 3)]
    groups = [set(chunk.tolist()) for chunk in dealt.chunk(3)]
    assert all(len(group) == 4 for group in groups), "no peer holds a label twice"
    assert sorted(dealt.tolist()) == labels.tolist()
    uneven = torch.tensor([0, 0, 0, 1, 1])  # chunks of 3 and 2
    assert sorted(uneven[spread_order(uneven, 2)].tolist()) == uneven.tolist()
    assert torch.equal(spread_order(labels, 1), torch.arange(12))


def test_the_true_grouping_is_found_from_the_sorted_dealing(cifar16, make_model) -> None:
    """3 peers × 2 images, τ = 3: the true images dealt in label order (as recovered labels
    are) match worse than the truth, and the greedy swaps bring the loss to the truth's and
    every peer's images back together."""
    images, labels = cifar16
    images, labels = images[:6], labels[:6]
    net = make_model("lenet_dlg", size=16)
    target = peers_target(net, images, labels, 3, LocalSchedule(steps=3, lr=0.1))
    loss = RoundsLoss(target, "cosine", "total", 0.0)
    dealt = torch.sort(labels, stable=True).indices
    assert group_sets(labels[dealt], images[dealt], 3) != group_sets(labels, images, 3), (
        "the case must start from a wrong grouping"
    )
    found = regrouped(loss, images[dealt], labels[dealt], 3)
    order = dealt[found.order]
    assert found.swaps >= 1
    assert found.loss_after < 1e-3 * found.loss_before
    assert group_sets(labels[order], images[order], 3) == group_sets(labels, images, 3)


def test_one_plain_step_leaves_the_grouping_alone(cifar16, make_model) -> None:
    """With one gradient step the mean update does not depend on the grouping: no swap."""
    images, labels = cifar16
    net = make_model("lenet_dlg", size=16)
    target = peers_target(net, images[:6], labels[:6], 3, LocalSchedule())
    loss = RoundsLoss(target, "cosine", "total", 0.0)
    dummy = torch.rand(images[:6].shape, generator=torch.Generator().manual_seed(0))
    found = regrouped(loss, dummy, labels[:6], 3)
    assert found.swaps == 0 and torch.equal(found.order, torch.arange(6))


def test_the_attack_regroups_recovered_labels_only(cifar16, make_model) -> None:
    """The curious client records its swaps per stage with recovered labels; with given
    labels (already in the peers' order) it does not regroup."""
    images, labels = cifar16
    net = make_model("lenet_dlg", size=16)
    target = peers_target(net, images[:6], labels[:6], 3, LocalSchedule(steps=3, lr=0.1))
    given = replace(target, labels=labels[:6])
    for mode, case, stages in (("recovered", target, 1), ("given", given, 0)):
        attack = ATTACKS.get("curious_client")(
            AttackConfig(
                name="curious_client",
                iterations=2,
                labels=mode,
                options={"scale": 2, "refine_scales": [1]},
            )
        )
        result = attack.reconstruct(case)
        assert len(result.extra["regroup_swaps"]) == stages
        assert result.labels is not None
        expected = resolve_labels(mode, case).tolist()
        assert sorted(result.labels.tolist()) == sorted(expected)
