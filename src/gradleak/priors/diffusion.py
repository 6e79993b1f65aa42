"""Refining a raw inversion with a pretrained DDPM (the ``prior`` extra, diffusers).

A gradient inversion gets the coarse content of an image right and its fine detail wrong: the
curious client even optimises a low-resolution latent. A diffusion model trained on similar
images supplies plausible detail while the refinement keeps what the inversion established.
Two restorations, both deterministic DDIM (η = 0) from a chosen noise level:

- ``sdedit`` (Meng et al. 2022): noise the inversion to level ``strength``, then denoise.
- ``ddrm`` (measurement-consistent, in the spirit of DDRM/DDNM super-resolution ×s): at each
  step the predicted clean image keeps its own high frequencies but takes its block-averaged
  low-resolution content from the inversion, so the result stays consistent with it.

Models load with diffusers' ``DDPMPipeline.from_pretrained``: the folder ``gradleak prior
train`` writes, or a hub id (e.g. ``google/ddpm-cifar10-32``) when online or already cached;
``HF_HUB_OFFLINE=1`` is respected by diffusers itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.errors import ConfigError
from gradleak.registry import Registry

PRIOR_INSTALL_HINT = "the diffusion prior needs diffusers: pip install 'gradleak[prior]'"


def import_diffusers() -> Any:
    """diffusers, or a one-line error that says how to install it."""
    try:
        import diffusers
    except ImportError:
        raise ConfigError(PRIOR_INSTALL_HINT) from None
    return diffusers


def check_source(source: str | Path) -> str:
    """The folder (expanded) or hub id to load; a ConfigError, before any work, when the
    source names a folder that does not exist. Anything but ``owner/name`` is a folder."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    is_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not is_hub_id:
        raise ConfigError(
            f"prior model folder {text} does not exist; train one with "
            "'gradleak prior train --data NAME --output DIR' or give a hub id"
        )
    return text


@dataclass
class DiffusionPrior:
    """A noise-prediction UNet and the cumulative noise schedule it was trained with."""

    unet: torch.nn.Module
    alphas_cumprod: Tensor
    image_size: int
    channels: int

    @classmethod
    def load(cls, source: str | Path, device: torch.device | str = "cpu") -> DiffusionPrior:
        """Load a DDPM pipeline from a local folder or a hub id; ConfigError when absent."""
        diffusers = import_diffusers()
        resolved = check_source(source)
        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        try:
            pipeline = diffusers.DDPMPipeline.from_pretrained(resolved)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"prior model {str(source)!r} is neither a model folder nor a loadable hub id "
                f"({first})"
            ) from None
        unet = pipeline.unet.to(device).eval()
        config = unet.config
        return cls(
            unet=unet,
            alphas_cumprod=pipeline.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32),
            image_size=int(config.sample_size),
            channels=int(config.in_channels),
        )

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def predict_noise(self, noisy: Tensor, timestep: int) -> Tensor:
        t = torch.full((noisy.shape[0],), timestep, device=noisy.device, dtype=torch.long)
        return self.unet(noisy, t).sample


Projection = Callable[[Tensor], Tensor]
"""Maps the predicted clean image (in [-1, 1]) to one consistent with the measurement."""


def block_downsample(images: Tensor, scale: int) -> Tensor:
    """Average pooling over s×s blocks: the super-resolution degradation A."""
    return F.avg_pool2d(images, scale) if scale > 1 else images


def block_upsample(images: Tensor, scale: int) -> Tensor:
    """Nearest-neighbour replication: A's pseudo-inverse, so A(A⁺(y)) = y exactly."""
    return F.interpolate(images, scale_factor=scale, mode="nearest") if scale > 1 else images


def low_frequency_projection(measurement: Tensor, scale: int, weight: float) -> Projection:
    """x̂₀ ← x̂₀ + w·A⁺(A(y) − A(x̂₀)): replace (w = 1) or pull (w < 1) the low-resolution
    content of the prediction towards the inversion's, leaving its detail free."""
    target = block_downsample(measurement, scale)

    def project(x0: Tensor) -> Tensor:
        return x0 + weight * block_upsample(target - block_downsample(x0, scale), scale)

    return project


@torch.no_grad()
def ddim_restore(
    prior: DiffusionPrior,
    images: Tensor,
    strength: float,
    steps: int,
    generator: torch.Generator,
    project: Projection | None = None,
) -> Tensor:
    """Noise ``images`` (in [0, 1]) to level ``strength`` ∈ (0, 1] of the schedule and run
    deterministic DDIM back to t = 0 in about ``steps·strength`` steps, optionally projecting
    each predicted clean image."""
    if images.shape[-1] != prior.image_size or images.shape[1] != prior.channels:
        raise ConfigError(
            f"the prior model makes {prior.channels}×{prior.image_size}² images but the "
            f"reconstruction is {images.shape[1]}×{images.shape[-1]}²; train a prior on the same data"
        )
    device = images.device
    alphas = prior.alphas_cumprod.to(device)
    start = max(1, min(prior.num_train_timesteps, round(strength * prior.num_train_timesteps))) - 1
    count = max(1, math.ceil(steps * strength))
    timesteps = torch.linspace(start, 0, count + 1).round().long().unique_consecutive().tolist()
    clean = images * 2 - 1
    noise = torch.randn(clean.shape, generator=generator).to(device)
    x = alphas[start].sqrt() * clean + (1 - alphas[start]).sqrt() * noise
    for i, t in enumerate(timesteps):
        eps = prior.predict_noise(x, t)
        x0 = ((x - (1 - alphas[t]).sqrt() * eps) / alphas[t].sqrt()).clamp(-1, 1)
        if project is not None:
            x0 = project(x0).clamp(-1, 1)
        if i + 1 == len(timesteps):
            x = x0
            break
        prev = alphas[timesteps[i + 1]]
        eps = (x - alphas[t].sqrt() * x0) / (1 - alphas[t]).sqrt()
        x = prev.sqrt() * x0 + (1 - prev).sqrt() * eps
    return ((x + 1) / 2).clamp(0, 1)


@dataclass(frozen=True)
class RefineSettings:
    """How hard to refine: noise level, DDIM steps (for the full schedule), and for ``ddrm``
    the block size and weight of the low-frequency consistency."""

    strength: float = 0.5
    steps: int = 50
    scale: int = 4
    consistency: float = 1.0
    seed: int = 0


Refiner = Callable[[DiffusionPrior, Tensor, RefineSettings], Tensor]

REFINERS: Registry[Refiner] = Registry("prior method")


@REFINERS.register("sdedit")
def sdedit(prior: DiffusionPrior, images: Tensor, settings: RefineSettings) -> Tensor:
    """SDEdit: partial noising and deterministic denoising, no consistency step."""
    generator = torch.Generator().manual_seed(settings.seed)
    return ddim_restore(prior, images, settings.strength, settings.steps, generator)


@REFINERS.register("ddrm")
def ddrm_super_resolution(
    prior: DiffusionPrior, images: Tensor, settings: RefineSettings
) -> Tensor:
    """DDIM with the low-frequency consistency projection onto the inversion at every step."""
    generator = torch.Generator().manual_seed(settings.seed)
    project = low_frequency_projection(images * 2 - 1, settings.scale, settings.consistency)
    return ddim_restore(prior, images, settings.strength, settings.steps, generator, project)


def refine(source: str | Path, method: str, images: Tensor, settings: RefineSettings) -> Tensor:
    """Load the prior at ``source`` and refine ``images`` (B, C, H, W) in [0, 1] with ``method``."""
    refiner = REFINERS.get(method)
    prior = DiffusionPrior.load(source, images.device)
    return refiner(prior, images, settings)
