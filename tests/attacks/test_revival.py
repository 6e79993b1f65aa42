"""Reviving dummy images that collapse to a flat picture (attacks.revival), seen from the
attacker's side only: its own images' pixel spread."""

from __future__ import annotations

import torch

from gradleak.attacks.base import ATTACKS
from gradleak.attacks.revival import dead_images, revived
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig


def test_flat_images_are_dead_and_real_photos_are_not(cifar32) -> None:
    images, _ = cifar32
    batch = images[:4].clone()
    batch[1] = 0.0
    batch[3] = 0.5
    assert dead_images(batch).tolist() == [False, True, False, True]
    assert not dead_images(images).any(), "no CIFAR-10 photo is that flat"
    fresh = torch.rand(batch.shape, generator=torch.Generator().manual_seed(0))
    out = revived(batch, dead_images(batch), fresh)
    assert torch.equal(out[1], fresh[1]) and torch.equal(out[0], batch[0])


def test_a_black_image_is_redrawn_and_matched_again(cifar16, make_model) -> None:
    """A dummy image started black, with a step too small to bring it back: the revival
    redraws it and reruns the stage, and keeps whichever pass matched better (the first
    pass is the same as without revival: same seed)."""
    images, labels = cifar16
    net = make_model("convnet", size=16, width=4)
    target = target_from_batch(net, images[:2], labels[:2])
    start = images[2:4].clone()
    start[1] = 0.0  # the second dummy image starts dead
    results = {}
    for revive in (False, True):
        torch.manual_seed(0)
        attack = ATTACKS.get("curious_client")(
            AttackConfig(
                name="curious_client",
                iterations=3,
                lr=1e-4,
                labels="recovered",
                options={"scale": 2, "refine_scales": [], "revive": revive},
            )
        )
        attack.start_images = start
        results[revive] = attack.reconstruct(target)
    assert results[False].extra["revived_images"] == []
    assert bool(dead_images(results[False].images)[1]), "the constructed case must die"
    assert results[True].extra["revived_images"] == [1]
    assert results[True].best_loss <= results[False].best_loss * (1 + 1e-6)
    kept_rerun = results[True].best_loss < results[False].best_loss * (1 - 1e-6)
    assert bool(dead_images(results[True].images)[1]) != kept_rerun
