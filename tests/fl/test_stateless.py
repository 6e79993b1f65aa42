"""``call_with`` is ``torch.func.functional_call`` without its per-call cost: same outputs and
gradients, ties, BatchNorm buffers, parametrisations, transforms, and the module left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parametrize

from gradleak.fl.stateless import call_with, set_mode


def _convnet() -> nn.Module:
    """Conv, BatchNorm (running statistics and a step counter), ReLU, pooling, linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip


def _fresh(model: nn.Module, seed: int = 3) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {
        k: torch.randn(v.shape, generator=gen).to(v.dtype) if v.is_floating_point() else v.clone()
        for k, v in named.items()
    }


def _own(model: nn.Module) -> dict[str, Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def test_matches_functional_call_and_restores_the_module() -> None:
    torch.manual_seed(0)
    model = _convnet().train()
    before = dict(_own(model))
    tensors = _fresh(model)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ours = call_with(model, {k: v.clone() for k, v in tensors.items()}, (x,))
    theirs = functional_call(model, {k: v.clone() for k, v in tensors.items()}, (x,))
    torch.testing.assert_close(ours, theirs)
    assert all(a is b for a, b in zip(before.values(), _own(model).values(), strict=True))
    assert not torch.allclose(ours, model(x))


def test_batchnorm_running_statistics_update_the_given_buffers() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    own_mean = model[1].running_mean.clone()
    tensors = _fresh(model)
    given = tensors["1.running_mean"].clone()
    call_with(model, tensors, (torch.rand(2, 3, 8, 8),))
    assert not torch.equal(tensors["1.running_mean"], given)
    assert torch.equal(model[1].running_mean, own_mean)


def test_tied_weights_and_shared_submodules_are_replaced_everywhere() -> None:
    shared = nn.Linear(5, 5)
    model = nn.Sequential(shared, nn.Tanh(), shared, nn.Linear(5, 3))
    model[3].weight = nn.Parameter(torch.randn(3, 5))
    tied = nn.Sequential(nn.Linear(5, 5, bias=False), nn.Tanh(), nn.Linear(5, 5, bias=False))
    tied[2].weight = tied[0].weight
    x = torch.randn(2, 5)
    for m in (model, tied):
        tensors = {k: torch.randn_like(v) for k, v in m.named_parameters()}
        torch.testing.assert_close(call_with(m, tensors, (x,)), functional_call(m, tensors, (x,)))


def test_parametrised_module_and_unknown_names_follow_functional_call() -> None:
    class Symmetric(nn.Module):
        def forward(self, w: Tensor) -> Tensor:
            return w.triu() + w.triu(1).transpose(-1, -2)

    model = nn.Linear(4, 4)
    parametrize.register_parametrization(model, "weight", Symmetric())
    tensors = {k: torch.randn_like(v) for k, v in model.named_parameters()}
    x = torch.randn(3, 4)
    torch.testing.assert_close(
        call_with(model, tensors, (x,)), functional_call(model, tensors, (x,))
    )
    with pytest.raises((AttributeError, KeyError, RuntimeError)):
        functional_call(model, {"nothing.here": torch.zeros(1)}, (x,), strict=True)


def test_module_is_restored_when_the_call_raises() -> None:
    model = nn.Linear(4, 2)
    own = model.weight
    with pytest.raises(RuntimeError):
        call_with(model, {"weight": torch.randn(2, 4)}, (torch.randn(3, 5),))
    assert model.weight is own


def test_gradients_and_vmap_through_it_match() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 14 * 14, 10)
    )
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))

    def loss(call, p: dict[str, Tensor], image: Tensor) -> Tensor:  # type: ignore[no-untyped-def]
        return call(model, p, (image[None],)).square().sum()

    ours = vmap(grad(lambda p, i: loss(call_with, p, i)), in_dims=(None, 0))(params, x)
    theirs = vmap(grad(lambda p, i: loss(functional_call, p, i)), in_dims=(None, 0))(params, x)
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k])


def test_set_mode_only_when_something_changes() -> None:
    calls: list[bool] = []

    class Recording(nn.Module):
        def train(self, mode: bool = True) -> Recording:
            calls.append(mode)
            return super().train(mode)

    model = Recording().train()
    calls.clear()
    set_mode(model, True)
    assert calls == []
    set_mode(model, False)
    assert calls == [False] and not model.training
