"""Secure aggregation by pairwise masking (Bonawitz et al., 2017), simulated.

Every pair of clients ``i < j`` shares a seed; client ``i`` adds the mask drawn from it and
client ``j`` subtracts it. One masked upload alone looks like noise to the server, yet the masks
cancel in the sum, so the server learns only the aggregate. This is what the simulator's secure
aggregation mode hands the server: it takes per-client views away from the attacker.

Real protocols mask in a finite field, where uniform masks hide perfectly; in floating point we
draw Gaussian masks far larger than the updates and compute in float64, so that the masks
cancel to about ``1e-12`` relative while each upload stays essentially uncorrelated with its
client's update. Dropout recovery is not simulated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _pair_generator(seed: int, first: int, second: int) -> torch.Generator:
    """The generator both clients of a pair derive from their shared seed."""
    state = np.random.SeedSequence([seed, first, second]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def mask_updates(updates: Tensor, seed: int, mask_scale: float = 1e4) -> Tensor:
    """The ``(n, d)`` float64 uploads of pairwise-masked ``updates``; their sum is the true sum.

    Masks have standard deviation ``mask_scale`` times the largest update entry (or ``mask_scale``
    for all-zero updates), so that how well they hide an update does not depend on its units.
    """
    n, d = updates.shape
    exact = updates.detach().to(torch.float64)
    std = mask_scale * (float(exact.abs().max()) or 1.0)
    masked = exact.clone()
    for i in range(n):
        for j in range(i + 1, n):
            mask = std * torch.randn(d, generator=_pair_generator(seed, i, j), dtype=torch.float64)
            masked[i] += mask.to(masked.device)
            masked[j] -= mask.to(masked.device)
    return masked
