"""Learned image priors for the curious client, chosen by name (``attack.options.prior.name``).

A prior can act in two places. After the inversion it can *refine* the raw images (a post
process: the DDPM's SDEdit/DDRM restorations, or Real-ESRGAN's ×4 super-resolution of the
images' ¼-size content). A prior that is a differentiable map from the attack's ¼-resolution
latent to images can also be the latent's *decoder* in a final matching stage: the latent is
optimised through it against the gradient-matching loss, so every candidate is an image the
prior can produce. Each prior is a small class in :data:`PRIORS`; its heavy parts (diffusers,
the converted weights) load only when it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from gradleak.registry import Registry


class PriorOptions(BaseModel):
    """``attack.options.prior``: which prior refines the inversion, and how."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = "ddpm"
    """A name in :data:`PRIORS`: ``ddpm`` (a trained diffusion model) or ``realesrgan``."""
    model: str | None = None
    """ddpm: a folder written by ``gradleak prior train`` (or any DDPMPipeline), or a hub id."""
    method: str = "ddrm"
    """ddpm: the restoration, ``ddrm`` or ``sdedit``."""
    strength: float = Field(default=0.4, gt=0.0, le=1.0)
    steps: PositiveInt = 50
    consistency: float = Field(default=1.0, ge=0.0, le=1.0)
    scale: PositiveInt | None = None
    """ddpm: block size of ``ddrm``'s low-frequency consistency; the latent's scale when unset."""
    refine: bool = True
    """Post-process the final images with the prior."""
    decoder_iterations: NonNegativeInt = 0
    """Iterations of a last stage that optimises the ¼-size latent through the prior's decoder
    (priors that have one); 0 skips the stage."""
    decoder_lr: PositiveFloat = 0.01
    """Adam step size of the decoder stage (on the latent, whose values lie in [0, 1])."""


class ImagePrior(ABC):
    """One learned prior: what it checks up front, how it refines, and its decoder if any."""

    def check(self, options: PriorOptions) -> None:  # noqa: B027 - most need nothing
        """Refuse unusable options before any attack work (no weights are loaded here)."""

    @abstractmethod
    def refine(self, images: Tensor, options: PriorOptions, latent_scale: int) -> Tensor:
        """The refined images (B, C, H, W) in [0, 1]; ``latent_scale`` is the attack's."""

    def decoder(self, options: PriorOptions) -> nn.Module | None:
        """A frozen differentiable map from a ¼-size latent to images, or None."""
        return None


PRIORS: Registry[type[ImagePrior]] = Registry("prior")
