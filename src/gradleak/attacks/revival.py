"""Reviving reconstructions that die: an image of the dummy batch that collapses to a flat
(typically black) picture mid-run.

With ReLU networks such an image feeds the model almost nothing (a black input leaves only the
biases), so its share of the matching loss stops depending on it and the optimiser never
brings it back; the other images then absorb its part of the update. The attacker sees this on
its own dummy batch, without any ground truth: the image's pixels have no spread left. The cure
is to redraw just that image and match again, the living images carrying on from where they
were.
"""

from __future__ import annotations

import torch
from torch import Tensor

FLAT_STD = 0.04
"""Per-image pixel standard deviation below which an image counts as dead. CIFAR-10 photos
spread more (the flattest of the first 1,000 test images: 0.055 on [0, 1], 0.043 seen through
the 4× latent of the first stage); the collapsed image of the shipped curious-client run (seed
0, a wrongly recovered label: a class absent from the batch, whose image had nothing to
explain) went almost black, mean 0.021, spread 0.029."""


def dead_images(images: Tensor, flat_std: float = FLAT_STD) -> Tensor:
    """Which images of a (B, C, H, W) batch in [0, 1] are flat: a boolean mask of size B."""
    return images.detach().flatten(1).std(dim=1) < flat_std


def revived(images: Tensor, dead: Tensor, fresh: Tensor) -> Tensor:
    """``images`` with the ``dead`` ones replaced by the matching images of ``fresh``."""
    mask = dead.reshape(-1, *([1] * (images.dim() - 1))).to(images.device)
    return torch.where(mask, fresh.to(images), images.detach())
