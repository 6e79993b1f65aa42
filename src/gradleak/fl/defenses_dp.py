"""Differential-privacy pieces: clipping, DP-SGD's per-sample step and epsilon accounting.

Accounting goes through Opacus's RDP accountant so that our epsilons are the ones the DP
literature and Opacus users report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import overload

import torch
from opacus.accountants import RDPAccountant
from torch import Tensor

from gradleak.errors import ConfigError


@overload
def clip_to_norm(update: Tensor, clip_norm: float) -> Tensor: ...


@overload
def clip_to_norm(update: Mapping[str, Tensor], clip_norm: float) -> dict[str, Tensor]: ...


def clip_to_norm(
    update: Tensor | Mapping[str, Tensor], clip_norm: float
) -> Tensor | dict[str, Tensor]:
    """``update`` scaled down, if needed, to L2 norm at most ``clip_norm``: a flat vector (what
    the federation clips) or a dict of named tensors (what an attacker's replay clips), whose
    norm is that of its tensors flattened and concatenated in order, so both forms of one
    update are clipped by the same factor. Differentiable, so a replay can be inverted."""
    if isinstance(update, Tensor):
        return update * _clip_factor(update.norm(), clip_norm)
    flat = torch.cat([v.reshape(-1) for v in update.values()])
    scale = _clip_factor(flat.norm(), clip_norm)
    return {k: v * scale for k, v in update.items()}


def _clip_factor(norm: Tensor, clip_norm: float) -> Tensor:
    """min(1, clip_norm / norm), finite for a zero norm."""
    return (clip_norm / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp(max=1.0)


def gaussian_like(reference: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal noise shaped like ``reference``, drawn on the generator's device."""
    noise = torch.randn(
        reference.shape, generator=generator, dtype=reference.dtype, device=generator.device
    )
    return noise.to(reference.device)


def _check_noise(clip_norm: float, noise_multiplier: float) -> None:
    if clip_norm <= 0:
        raise ConfigError(f"DP clipping needs clip_norm > 0, got {clip_norm}")
    if noise_multiplier < 0:
        raise ConfigError(f"DP noise_multiplier must be >= 0, got {noise_multiplier}")


def clip_and_noise_per_sample(
    per_sample_grads: Mapping[str, Tensor],
    clip_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """DP-SGD's gradient (Abadi et al., 2016): clip each sample, sum, add noise, divide by B.

    ``per_sample_grads`` maps parameter names to ``(B, ...)`` tensors; a sample's norm is taken
    over all parameters together, so each sample moves the sum by at most ``clip_norm``. The
    noise ``N(0, (noise_multiplier * clip_norm)^2)`` is drawn per entry, in name order.
    """
    _check_noise(clip_norm, noise_multiplier)
    names = sorted(per_sample_grads)
    batch = per_sample_grads[names[0]].shape[0]
    squared = sum(per_sample_grads[n].reshape(batch, -1).square().sum(dim=1) for n in names)
    norms = torch.as_tensor(squared).sqrt()
    scale = (clip_norm / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp(max=1.0)
    std = noise_multiplier * clip_norm
    out = {}
    for name in names:
        grads = per_sample_grads[name]
        clipped = torch.einsum("b,b...->...", scale.to(grads.dtype), grads)
        out[name] = (clipped + std * gaussian_like(clipped, generator)) / batch
    return out


def dp_epsilon_composed(mechanisms: Sequence[tuple[float, float, int]], delta: float) -> float:
    """Epsilon of composed subsampled Gaussian mechanisms ``(noise_multiplier, rate, steps)``."""
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"DP delta must lie in (0, 1), got {delta}")
    for noise_multiplier, sample_rate, steps in mechanisms:
        if noise_multiplier < 0:
            raise ConfigError(f"DP noise_multiplier must be >= 0, got {noise_multiplier}")
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"DP sample_rate must lie in (0, 1], got {sample_rate}")
        if steps < 0:
            raise ConfigError(f"DP steps must be >= 0, got {steps}")
    active = [m for m in mechanisms if m[2] > 0]
    if any(noise_multiplier == 0 for noise_multiplier, _, _ in active):
        return math.inf
    accountant = RDPAccountant()
    accountant.history = [(float(s), float(q), int(t)) for s, q, t in active]
    return float(accountant.get_epsilon(delta=delta))


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Client-level (epsilon, delta) of ``steps`` rounds of clipping plus Gaussian noise.

    The protected unit is a client's whole data set (add/remove adjacency, sensitivity =
    clip norm). ``sample_rate = clients_per_round / num_clients`` is the chance that a client
    takes part in a round; the amplification it buys holds only against an observer who does
    not learn which clients took part (a peer that sees the global models). A server that sees
    each upload gains nothing from subsampling: use ``sample_rate = 1`` for it. Zero noise
    gives ``inf``; zero steps give 0.
    """
    return dp_epsilon_composed([(noise_multiplier, sample_rate, steps)], delta)
