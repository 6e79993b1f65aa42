"""Gradient distances: scale invariance, masks and the partial-matching objective."""

from __future__ import annotations

import pytest
import torch

from gradleak.attacks.objectives import OBJECTIVES, PartialMatching, magnitude_mask


def grads(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(10, 20, generator=g), "b": torch.randn(30, generator=g)}


def test_cosine_is_invariant_to_scale() -> None:
    dummy, target = grads(0), grads(1)
    base = OBJECTIVES.get("cosine")(dummy, target)
    scaled = OBJECTIVES.get("cosine")({k: 7.5 * v for k, v in dummy.items()}, target)
    assert torch.allclose(base, scaled, atol=1e-6)
    assert float(OBJECTIVES.get("cosine")(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_l2_and_l1_vanish_only_at_equality() -> None:
    target = grads(1)
    for name in ("l2", "l1"):
        assert float(OBJECTIVES.get(name)(target, target)) == 0.0
        assert float(OBJECTIVES.get(name)(grads(0), target)) > 0.0


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_magnitude_mask_keeps_the_requested_fraction(keep: float) -> None:
    reference = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    mask = magnitude_mask(reference, keep)
    assert float(mask.mean()) == pytest.approx(keep, abs=0.01)
    kept, dropped = reference.abs()[mask.bool()], reference.abs()[~mask.bool()]
    assert kept.min() >= dropped.max()


def test_partial_matching_is_minus_one_per_tensor_at_equality() -> None:
    target = grads(1)
    for source in ("dummy", "target"):
        value = PartialMatching(source, 0.5)(target, target)
        assert float(value) == pytest.approx(-len(target), abs=1e-5)
        assert float(PartialMatching(source, 0.5)(grads(0), target)) > -len(target) + 0.1


def test_partial_matching_mask_carries_no_gradient() -> None:
    dummy = {k: v.requires_grad_(True) for k, v in grads(0).items()}
    PartialMatching("dummy", 0.5)(dummy, grads(1)).backward()
    for name, tensor in dummy.items():
        masked_out = ~magnitude_mask(tensor, 0.5).bool()
        assert torch.all(tensor.grad[masked_out] == 0), name
