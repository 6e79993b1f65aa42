"""A model that expects normalised input, attacked in pixel space.

Attacks optimise images in [0, 1]; a model trained on ``(x − mean) / std`` is given that by a
forward pre-hook on the attacker's copy. A hook rather than a wrapping module keeps the
parameter names the user's gradient is keyed by, and it runs under ``functional_call`` like
the model's own layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gradleak.errors import ConfigError

Stats = float | Sequence[float] | Tensor


class Normalize:
    """``(x − mean) / std`` per channel, as a forward pre-hook."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        self.mean, self.std = mean, std

    def __call__(self, _module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        images, *rest = args
        return ((images - self.mean) / self.std, *rest)


def channel_stats(value: Stats, channels: int, what: str, device: torch.device) -> Tensor:
    """One value per channel (a scalar is every channel's), shaped (1, C, 1, 1)."""
    stats = torch.as_tensor(value, dtype=torch.float32, device=device).flatten()
    if stats.numel() == 1:
        stats = stats.expand(channels)
    if stats.numel() != channels:
        raise ConfigError(f"normalize: {what} has {stats.numel()} values for {channels} channels")
    return stats.reshape(1, channels, 1, 1).clone()


def normalized(
    model: nn.Module, normalize: tuple[Stats, Stats], channels: int, device: torch.device
) -> nn.Module:
    """``model`` (already the attacker's own copy) seeing ``(x − mean) / std``."""
    mean = channel_stats(normalize[0], channels, "mean", device)
    std = channel_stats(normalize[1], channels, "std", device)
    if bool((std <= 0).any()):
        raise ConfigError("normalize: every std must be positive")
    model.register_forward_pre_hook(Normalize(mean, std))
    return model
