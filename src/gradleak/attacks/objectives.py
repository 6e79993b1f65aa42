"""Gradient-matching distances between a dummy update and the observed one.

Every objective is a callable ``(dummy, target) -> scalar`` over parameter dicts. The plain
distances are registered as functions; :class:`PartialMatching` is configurable (mask source and
kept fraction) and registered with the FedLeak authors' defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gradleak.fl.functional import Params
from gradleak.registry import Registry

Objective = Callable[[Params, Params], Tensor]

OBJECTIVES: Registry[Objective] = Registry("gradient objective")


def _total(terms: list[Tensor]) -> Tensor:
    return torch.stack(terms).sum()


@OBJECTIVES.register("l2")
def l2_distance(dummy: Params, target: Params) -> Tensor:
    """Sum of squared differences over all tensors (DLG)."""
    return _total([(dummy[k] - target[k]).pow(2).sum() for k in target])


@OBJECTIVES.register("l1")
def l1_distance(dummy: Params, target: Params) -> Tensor:
    """Sum of absolute differences over all tensors."""
    return _total([(dummy[k] - target[k]).abs().sum() for k in target])


def _norm(update: Params) -> Tensor:
    return _total([v.pow(2).sum() for v in update.values()]).sqrt()


class _ConstantNorm:
    """The L2 norm of the last target seen, kept while the same target comes back.

    An attack compares every dummy update with one observed update, so its norm is constant
    over the run; recomputing it cost a reduction per tensor on every evaluation. The cache is
    keyed on the very objects (the dict, each tensor, and each tensor's version counter, so an
    in-place edit invalidates it) and holds them, so no freed object's id can be mistaken for
    them. A target that requires gradients is never cached: its norm must stay in the graph.
    """

    def __init__(self) -> None:
        self._entry: tuple[Params, tuple[Tensor, ...], tuple[int, ...], Tensor] | None = None

    def __call__(self, target: Params) -> Tensor:
        if torch.compiler.is_compiling():
            # A traced step (``attack.compile``) cannot read version counters of the
            # ``torch.func`` wrappers; the norm is then part of the compiled graph instead.
            return _norm(target)
        tensors = tuple(target.values())
        versions = tuple(t._version for t in tensors)
        entry = self._entry
        if (
            entry is not None
            and entry[0] is target
            and len(entry[1]) == len(tensors)
            and all(a is b for a, b in zip(entry[1], tensors, strict=True))
            and entry[2] == versions
        ):
            return entry[3]
        norm = _norm(target)
        if not any(t.requires_grad for t in tensors):
            self._entry = (target, tensors, versions, norm)
        return norm


_target_norm = _ConstantNorm()


@OBJECTIVES.register("cosine")
def cosine_distance(dummy: Params, target: Params) -> Tensor:
    """1 − cosine similarity of the whole update vectors (Inverting Gradients): invariant to
    the update's scale, so an unknown learning rate or averaging weight does not matter. The
    target's norm is computed once per target (:class:`_ConstantNorm`)."""
    dot = _total([(dummy[k] * target[k]).sum() for k in target])
    dummy_norm = _total([dummy[k].pow(2).sum() for k in target]).sqrt()
    return 1 - dot / (dummy_norm * _target_norm(target) + 1e-12)


def magnitude_mask(reference: Tensor, keep: float) -> Tensor:
    """1 where |reference| is at or above its (1 − keep) quantile: the ``keep`` fraction of
    largest-magnitude entries. The threshold is detached, so the mask carries no gradient."""
    magnitude = reference.detach().abs().flatten()
    if keep >= 1.0 or magnitude.numel() == 1:
        return torch.ones_like(reference)
    threshold = torch.quantile(magnitude.float(), 1.0 - keep).to(magnitude.dtype)
    return (reference.detach().abs() >= threshold).to(reference.dtype)


@dataclass(frozen=True)
class PartialMatching:
    """FedLeak's partial gradient matching.

    Per tensor l, M_l keeps the largest-magnitude ``keep`` fraction of the ``source`` gradient
    (the dummy one by default, as the authors), and D_l = mean|M⊙(ĝ − g')| − cos(M⊙ĝ, M⊙g').
    Matching only the large entries concentrates the optimisation on the coordinates that carry
    signal instead of the many near-zero ones, which is what makes large batches tractable.
    """

    source: Literal["dummy", "target"] = "dummy"
    keep: float = 0.5

    def __call__(self, dummy: Params, target: Params) -> Tensor:
        terms = []
        for k in target:
            mask = magnitude_mask(dummy[k] if self.source == "dummy" else target[k], self.keep)
            d, t = mask * dummy[k], mask * target[k]
            cos = (d * t).sum() / (d.norm() * t.norm() + 1e-8)
            terms.append((t - d).abs().mean() - cos)
        return _total(terms)


OBJECTIVES.register("partial")(PartialMatching())
