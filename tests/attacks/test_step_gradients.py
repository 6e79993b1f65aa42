"""The steppers differentiate towards the optimised tensors only (``steppers.set_gradients``):
the images' gradient, and so every step, must equal what ``loss.backward()`` left in ``.grad``,
including through BatchNorm in train mode and FedAvg's unrolled local steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.steppers import set_gradients
from gradleak.attacks.target import target_from_batch
from gradleak.fl.functional import LocalSchedule


@pytest.mark.parametrize(
    ("norm", "schedule"),
    [
        ("none", LocalSchedule()),
        ("batchnorm", LocalSchedule()),
        ("batchnorm", LocalSchedule(steps=3, lr=0.05, batch_size=2)),
    ],
)
def test_set_gradients_equals_backward(
    cifar16: tuple[torch.Tensor, torch.Tensor],
    make_model: Callable[..., nn.Module],
    norm: str,
    schedule: LocalSchedule,
) -> None:
    images, labels = cifar16[0][:4], cifar16[1][:4]
    model = make_model("convnet", width=4, norm=norm)
    target = target_from_batch(model, images, labels, schedule)
    loss = MatchingLoss(target, OBJECTIVES.get("cosine"), tv_weight=0.1)
    start = torch.rand(images.shape, generator=torch.Generator().manual_seed(3))

    reference = start.clone().requires_grad_(True)
    loss(reference, labels).backward()
    assert reference.grad is not None

    dummy = start.clone().requires_grad_(True)
    unused = torch.zeros(2, requires_grad=True)
    set_gradients([dummy, unused], loss(dummy, labels))
    assert unused.grad is None  # as backward leaves a tensor the loss does not depend on
    assert dummy.grad is not None
    torch.testing.assert_close(dummy.grad, reference.grad, rtol=1e-5, atol=1e-8)
