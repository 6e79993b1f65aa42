"""The user's tensors as the named parameter dicts an attack target holds, checked against the
model so that a gradient of the wrong model is one clear line, not a shape error mid-attack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.fl.functional import Params

Tensors = Sequence[Tensor] | Mapping[str, Tensor]
"""Per-parameter tensors: a list in ``model.parameters()`` order, or a dict by parameter name
(a ``state_dict`` is accepted: its buffer entries are read separately, see :func:`buffers_of`)."""


def as_params(model: nn.Module, value: Tensors, what: str, device: torch.device) -> Params:
    """``value`` as detached tensors keyed by ``model``'s parameter names, in its dtype and on
    ``device``; a missing, unknown or misshapen tensor names itself."""
    expected = {name: p for name, p in model.named_parameters()}
    if isinstance(value, Mapping):
        buffer_names = {name for name, _ in model.named_buffers()}
        given = {k: v for k, v in value.items() if k not in buffer_names}
        missing = sorted(set(expected) - set(given))
        unknown = sorted(set(given) - set(expected))
        if missing or unknown:
            raise ConfigError(
                f"{what}: the keys do not match the model's parameters (missing: {missing}, "
                f"unknown: {unknown})"
            )
    else:
        items = list(value)
        if len(items) != len(expected):
            raise ConfigError(
                f"{what}: {len(items)} tensors given, but the model has {len(expected)} "
                "parameters (give one per parameter, in model.parameters() order)"
            )
        given = dict(zip(expected, items, strict=True))
    out: Params = {}
    for name, param in expected.items():
        tensor = given[name]
        if not isinstance(tensor, Tensor):
            raise ConfigError(f"{what}[{name!r}]: expected a tensor, got {type(tensor).__name__}")
        if tuple(tensor.shape) != tuple(param.shape):
            raise ConfigError(
                f"{what}[{name!r}] has shape {tuple(tensor.shape)}, but the model's parameter "
                f"has {tuple(param.shape)}"
            )
        out[name] = tensor.detach().to(device=device, dtype=param.dtype).clone()
    return out


def buffers_of(model: nn.Module, value: Tensors | None, device: torch.device) -> Params | None:
    """The BatchNorm buffers a ``state_dict`` carries besides the parameters, when it carries
    all of the model's; None for a list, a parameters-only dict or a model without buffers."""
    names = [name for name, _ in model.named_buffers()]
    if not isinstance(value, Mapping) or not names or any(n not in value for n in names):
        return None
    return {n: value[n].detach().to(device).clone() for n in names}


def model_buffers(model: nn.Module) -> Params:
    return {name: b.detach().clone() for name, b in model.named_buffers()}
