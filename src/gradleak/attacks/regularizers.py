"""Image priors added to the matching objective.

Image-only priors are plain functions of the images. BatchNorm-statistics matching also needs
the activations inside the model, so it is an object that hooks the BatchNorm layers while the
dummy update is computed, and is only available when the attacker knows the model's buffers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from gradleak.errors import ConfigError
from gradleak.fl.functional import Params


def total_variation(images: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV, as in Inverting
    Gradients): favours piecewise-smooth images."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


def reference_statistics(
    model: nn.Module, buffers: Params, observed_buffers: Params | None = None
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per BatchNorm layer, the (mean, variance) the dummy batch should have.

    With the client's updated buffers, the batch's own statistics follow exactly from BatchNorm's
    running-average update (r' = (1 − m)·r + m·s, so s = (r' − (1 − m)·r) / m, one local step).
    Without them the model's running statistics stand in, a population prior (as GradInversion).
    """
    stats = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        mean, var = buffers[f"{name}.running_mean"], buffers[f"{name}.running_var"]
        if observed_buffers is not None and module.momentum:
            m = module.momentum
            mean = (observed_buffers[f"{name}.running_mean"] - (1 - m) * mean) / m
            var = (observed_buffers[f"{name}.running_var"] - (1 - m) * var) / m
        stats[name] = (mean.detach(), var.detach())
    return stats


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer whose input statistics a prior can match."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class BatchNormMatching:
    """Distance between the dummy batch's BatchNorm input statistics and reference ones.

    Use as a context manager around the dummy update; :meth:`penalty` reads the statistics of
    the first forward pass of each layer (the one at the weights the client started from).
    """

    def __init__(self, model: nn.Module, reference: dict[str, tuple[Tensor, Tensor]]) -> None:
        if not reference:
            raise ConfigError(
                "attack.options.bn_weight > 0 matches BatchNorm statistics, but the model has no "
                "BatchNorm layers: set attack.options.bn_weight=0 or model.norm=batchnorm"
            )
        self.model, self.reference = model, reference
        self.captured: dict[str, tuple[Tensor, Tensor]] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def capture(_module: nn.Module, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
            if name not in self.captured:
                x = inputs[0]
                self.captured[name] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3)))

        return capture

    def __enter__(self) -> BatchNormMatching:
        self.captured = {}
        self._handles = [
            self.model.get_submodule(name).register_forward_hook(self._hook(name))
            for name in self.reference
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def penalty(self) -> Tensor:
        terms = [
            (mean - self.reference[name][0]).norm() + (var - self.reference[name][1]).norm()
            for name, (mean, var) in self.captured.items()
        ]
        return torch.stack(terms).sum()
