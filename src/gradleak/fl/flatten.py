"""Between named parameter dicts and flat vectors.

Aggregators, Byzantine adversaries and client defences work on flat ``(d,)`` vectors (they treat
an update as one point in parameter space); local training and attacks work on named dicts. A
:class:`ParamLayout` fixes the order once so that the round trip is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.fl.functional import Params


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's parameters, in a fixed order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, params: Params) -> ParamLayout:
        return cls(tuple(params), tuple(v.shape for v in params.values()))

    @property
    def sizes(self) -> list[int]:
        return [shape.numel() for shape in self.shapes]

    def flatten(self, params: Params) -> Tensor:
        return torch.cat([params[name].reshape(-1) for name in self.names])

    def stack(self, updates: list[Params]) -> Tensor:
        """``(n, d)``: one flattened update per row."""
        return torch.stack([self.flatten(update) for update in updates])

    def unflatten(self, vector: Tensor) -> Params:
        pieces = vector.split(self.sizes)
        return {
            name: piece.reshape(shape)
            for name, piece, shape in zip(self.names, pieces, self.shapes, strict=True)
        }
