"""``attack.compile``: the attack's whole loss-and-gradient step through ``torch.compile``.

An iteration of a gradient-matching attack is a forward pass, a backward pass that keeps its
graph (the replayed update), the objective, and a second backward to the images. ``torch.compile``
cannot trace that as written: autograd's ``create_graph`` double backward is not supported
through AOTAutograd, and compiling the parts around it leaves the costly part eager (measured:
compiling only the cosine objective gained nothing on DLG-LeNet). Written with ``torch.func``
instead (the replay by ``torch.func.grad``, the outer derivative by ``grad_and_value``), the
whole step is one functional program that Dynamo traces and Inductor compiles, forward and
both backward passes together.

The compiled function returns the loss and its gradient with respect to the images; the loop
still calls ``loss.backward()`` as for any closure (:class:`_WithGradient` hands the precomputed
gradient back), so optimisers, look-ahead steps, L-BFGS and the best-iterate keeper are
unchanged. It applies where that is sound: pixels optimised directly, labels fixed, no
BatchNorm-statistics prior (its forward hooks record a side effect that a functional trace
would not replay). Elsewhere, and when compiling fails on this platform, one warning line says
so and the attack runs eagerly, giving the same result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import grad_and_value

from gradleak.attacks.matching import MatchingLoss
from gradleak.attacks.parametrizations import Parametrization, PixelParametrization

BACKEND = "inductor"
"""The ``torch.compile`` backend: Inductor generates the fused kernels; tests swap in
``aot_eager`` (the same Dynamo trace and AOTAutograd graphs, no code generation) to stay fast."""


class _WithGradient(torch.autograd.Function):
    """A loss value whose gradient with respect to ``pixels`` was already computed."""

    @staticmethod
    def forward(ctx: Any, pixels: Tensor, value: Tensor, gradient: Tensor) -> Tensor:
        ctx.save_for_backward(gradient)
        return value.clone()

    @staticmethod
    def backward(ctx: Any, upstream: Tensor) -> tuple[Tensor, None, None]:
        (gradient,) = ctx.saved_tensors
        return upstream * gradient, None, None


def compile_unsupported(loss: object, labels: Tensor | None, pixels_only: bool) -> str:
    """Why this attack's step cannot be compiled, or "" when it can."""
    if not isinstance(loss, MatchingLoss):
        return "the attack's loss is not a replayed-update matching loss"
    if labels is None:
        return "soft labels are optimised jointly"
    if not pixels_only:
        return "the parametrisation is not plain pixels"
    if loss.batchnorm is not None:
        return "the BatchNorm-statistics prior records statistics by hooks"
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    return ""


def warn_once(reason: str) -> None:
    """The one line a user sees when ``attack.compile`` falls back to the eager step."""
    warnings.warn(f"attack.compile: running eagerly ({reason})", RuntimeWarning, stacklevel=3)


class CompiledStep:
    """``images -> (d loss / d images, loss)`` for fixed labels, compiled once per attack and
    shared by its restarts (they differ only in the images, so nothing recompiles)."""

    def __init__(self, loss: MatchingLoss, labels: Tensor) -> None:
        def value(images: Tensor) -> Tensor:
            return loss(images, labels, functional=True)

        self._eager = grad_and_value(value)
        self._compiled: Callable[[Tensor], tuple[Tensor, Tensor]] | None = torch.compile(
            self._eager, backend=BACKEND
        )

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if self._compiled is not None:
            try:
                return self._compiled(images)
            except Exception as exc:  # a platform without a working compiler toolchain
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                first = " ".join(lines[:2])[:200]
                warn_once(f"torch.compile failed: {type(exc).__name__}: {first}")
                self._compiled = None
        return self._eager(images)

    def closure(self, parametrization: Parametrization) -> Callable[[], Tensor]:
        """The loss closure of one trial: the compiled step at the trial's current pixels."""
        assert isinstance(parametrization, PixelParametrization)
        pixels = parametrization.pixels

        def evaluate() -> Tensor:
            gradient, value = self(pixels.detach())
            return _WithGradient.apply(pixels, value.detach(), gradient.detach())

        return evaluate
