"""FedSGD's shortcut: one plain step's pseudo-gradient is returned as the gradient itself.

The shortcut must agree with the general path (weights stepped, (w0 − w1)/lr read off them) up
to float rounding, with and without BatchNorm, and the attack's differentiable replay must still
produce the same predicted update and the same gradient with respect to the dummy images.
Several steps (FedAvg) still take the general path, unchanged.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gradleak.attacks.target import UpdateModel
from gradleak.fl.functional import (
    LocalSchedule,
    Params,
    autograd_gradient,
    local_update,
    sgd_steps,
    split_state,
    unrolled_sgd_steps,
)

RTOL, ATOL = 1e-5, 1e-6


def _model(batchnorm: bool) -> nn.Module:
    torch.manual_seed(0)
    norm: nn.Module = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), norm, nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)
    ).train()


def _batch(n: int = 4) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=gen), torch.randint(0, 5, (n,), generator=gen)


def _close(a: Params, b: Params) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=ATOL, msg=k)


def _general_update(
    model: nn.Module, params: Params, buffers: Params, images: Tensor, labels: Tensor,
    schedule: LocalSchedule,
) -> tuple[Params, Params]:  # fmt: skip
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    grad_fn = autograd_gradient(model, create_graph=True)
    return unrolled_sgd_steps(grad_fn, leaves, buffers, images, labels, schedule)


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_one_step_returns_the_general_paths_pseudo_gradient(
    batchnorm: bool, momentum: float
) -> None:
    model = _model(batchnorm)
    params, buffers = split_state(model)
    images, labels = _batch()
    schedule = LocalSchedule(steps=1, lr=0.1, momentum=momentum)
    fast, fast_buffers = local_update(model, params, buffers, images, labels, schedule)
    general, general_buffers = _general_update(model, params, buffers, images, labels, schedule)
    _close(fast, {k: v.detach() for k, v in general.items()})
    _close(fast_buffers, general_buffers)
    if batchnorm:  # the running statistics moved, and the caller's copy did not
        assert not torch.equal(fast_buffers["1.running_mean"], buffers["1.running_mean"])
        assert torch.equal(buffers["1.running_mean"], torch.zeros(4))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_the_replay_predicts_the_same_update_and_image_gradient(batchnorm: bool) -> None:
    """What an attack differentiates: the predicted update, and d(objective)/d(dummy images)."""
    model = _model(batchnorm)
    params, buffers = split_state(model)
    _, labels = _batch()
    schedule = LocalSchedule(steps=1, lr=0.1)
    target = {
        k: torch.randn_like(v, generator=torch.Generator().manual_seed(2))
        for k, v in params.items()
    }

    def run(general: bool) -> tuple[Params, Tensor]:
        images = _batch()[0].requires_grad_(True)
        model.train()
        if general:
            update, _ = _general_update(model, params, buffers, images, labels, schedule)
        else:
            update = UpdateModel(model, schedule, 1, True)(params, buffers, images, labels)
        loss = torch.stack([(update[k] - target[k]).pow(2).sum() for k in target]).sum()
        (grad,) = torch.autograd.grad(loss, [images])
        return {k: v.detach() for k, v in update.items()}, grad

    fast_update, fast_grad = run(general=False)
    general_update, general_grad = run(general=True)
    _close(fast_update, general_update)
    torch.testing.assert_close(fast_grad, general_grad, rtol=1e-4, atol=1e-6)


def test_one_group_is_the_mean_of_that_group_alone() -> None:
    """Two groups still average; one group is its own update, as averaging one tensor gives."""
    model = _model(batchnorm=False)
    params, buffers = split_state(model)
    images, labels = _batch()
    schedule = LocalSchedule(steps=1, lr=0.1)
    one = UpdateModel(model, schedule, 1, True)(params, buffers, images, labels, False)
    two = UpdateModel(model, schedule, 2, True)(params, buffers, images, labels, False)
    halves = [
        local_update(model, params, buffers, images[s], labels[s], schedule)[0]
        for s in (slice(0, 2), slice(2, 4))
    ]
    _close(two, {k: (halves[0][k] + halves[1][k]) / 2 for k in halves[0]})
    _close(one, local_update(model, params, buffers, images, labels, schedule)[0])


@pytest.mark.parametrize("batchnorm", [False, True])
def test_several_steps_still_unroll_every_step(batchnorm: bool) -> None:
    """FedAvg's pseudo-gradient is not one step's gradient, and sgd_steps is the general path."""
    model = _model(batchnorm)
    params, buffers = split_state(model)
    images, labels = _batch()
    schedule = LocalSchedule(steps=3, lr=0.1, batch_size=2, momentum=0.5)
    grad_fn = autograd_gradient(model)
    via_sgd, _ = sgd_steps(grad_fn, params, buffers, images, labels, schedule)
    unrolled, _ = unrolled_sgd_steps(grad_fn, params, buffers, images, labels, schedule)
    for k in via_sgd:
        assert torch.equal(via_sgd[k], unrolled[k])
    one_step, _ = local_update(model, params, buffers, images[:2], labels[:2], LocalSchedule())
    assert not all(torch.allclose(via_sgd[k], one_step[k], rtol=RTOL, atol=ATOL) for k in via_sgd)
