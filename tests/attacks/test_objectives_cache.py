"""The cosine objective's target norm is computed once per target, and never served stale."""

from __future__ import annotations

import torch
from torch import Tensor

from gradleak.attacks.objectives import OBJECTIVES, _norm

Params = dict[str, Tensor]


def _update(seed: int) -> Params:
    gen = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(4, 3, generator=gen), "b": torch.randn(4, generator=gen)}


def _uncached(dummy: Params, target: Params) -> Tensor:
    dot = torch.stack([(dummy[k] * target[k]).sum() for k in target]).sum()
    return 1 - dot / (_norm({k: dummy[k] for k in target}) * _norm(target) + 1e-12)


def test_repeated_calls_match_the_uncached_formula() -> None:
    cosine = OBJECTIVES.get("cosine")
    target = _update(0)
    for seed in (1, 2, 3):
        dummy = _update(seed)
        torch.testing.assert_close(cosine(dummy, target), _uncached(dummy, target))


def test_an_in_place_edit_or_another_target_is_not_served_the_old_norm() -> None:
    cosine = OBJECTIVES.get("cosine")
    target, dummy = _update(0), _update(1)
    cosine(dummy, target)
    target["w"].mul_(3.0)  # same dict and tensors, new contents
    torch.testing.assert_close(cosine(dummy, target), _uncached(dummy, target))
    target["b"] = torch.zeros(4)  # same dict, a tensor replaced
    torch.testing.assert_close(cosine(dummy, target), _uncached(dummy, target))
    other = _update(5)
    torch.testing.assert_close(cosine(dummy, other), _uncached(dummy, other))
    # The same value again after the other: the first target is recomputed, not confused.
    torch.testing.assert_close(cosine(dummy, target), _uncached(dummy, target))


def test_a_target_that_requires_grad_keeps_its_norm_in_the_graph() -> None:
    cosine = OBJECTIVES.get("cosine")
    dummy = _update(1)
    for _ in range(2):  # a cached graph would fail the second backward
        target = {k: v.clone().requires_grad_(True) for k, v in _update(0).items()}
        (grad,) = torch.autograd.grad(cosine(dummy, target), [target["w"]])
        assert grad.abs().sum() > 0


def test_batched_over_targets_with_vmap() -> None:
    cosine = OBJECTIVES.get("cosine")
    dummies = [_update(s) for s in (1, 2)]
    targets = [_update(s) for s in (3, 4)]
    stacked = [{k: torch.stack([u[k] for u in ups]) for k in ups[0]} for ups in (dummies, targets)]
    expected = torch.stack([_uncached(d, t) for d, t in zip(dummies, targets, strict=True)])
    for _ in range(2):
        torch.testing.assert_close(torch.vmap(cosine)(*stacked), expected)
