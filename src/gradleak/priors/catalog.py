"""The priors :data:`gradleak.priors.base.PRIORS` holds: ``ddpm`` and ``realesrgan``.

Both import their implementation inside the methods, so naming a prior costs nothing until it
runs: diffusers (the ``prior`` extra) only for ``ddpm``, the converted Real-ESRGAN weights
(``gradleak weights fetch realesrgan``, or converted at first use) only for ``realesrgan``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.priors.base import PRIORS, ImagePrior, PriorOptions

SR_CHUNK = 16
"""Images per super-resolution forward: bounds the peak memory of the ×4 feature maps."""


@PRIORS.register("ddpm")
class DDPMPrior(ImagePrior):
    """A trained diffusion model's SDEdit or DDRM restoration (:mod:`gradleak.priors.diffusion`)."""

    def check(self, options: PriorOptions) -> None:
        from gradleak.priors.diffusion import REFINERS, check_source

        if options.model is None:
            raise ConfigError(
                "attack.options.prior.model: the ddpm prior needs a model folder or hub id "
                "(train one with 'gradleak prior train')"
            )
        REFINERS.get(options.method)
        check_source(options.model)

    def refine(self, images: Tensor, options: PriorOptions, latent_scale: int) -> Tensor:
        from gradleak.priors.diffusion import RefineSettings, refine

        assert options.model is not None
        settings = RefineSettings(
            strength=options.strength,
            steps=options.steps,
            scale=options.scale or latent_scale,
            consistency=options.consistency,
        )
        return refine(options.model, options.method, images, settings)


def check_divisible(images_side: tuple[int, int], scale: int) -> None:
    """A ×``scale`` decoder makes only image sides that are multiples of ``scale``."""
    if images_side[0] % scale or images_side[1] % scale:
        raise ConfigError(
            f"the realesrgan prior makes ×{scale} images; {images_side[0]}×{images_side[1]} "
            f"is not a multiple of {scale}"
        )


@PRIORS.register("realesrgan")
class RealESRGANPrior(ImagePrior):
    """Real-ESRGAN x4plus: refine = super-resolve the images' ¼-size (area) content; decoder =
    the network itself, so the latent stage searches only images it can produce."""

    scale = 4

    def refine(self, images: Tensor, options: PriorOptions, latent_scale: int) -> Tensor:
        check_divisible((images.shape[-2], images.shape[-1]), self.scale)
        net = self._net(images.device)
        small = F.interpolate(images, scale_factor=1 / self.scale, mode="area")
        with torch.no_grad():
            parts = [net(chunk).clamp(0, 1) for chunk in small.split(SR_CHUNK)]
        return torch.cat(parts)

    def decoder(self, options: PriorOptions) -> nn.Module:
        return self._net(torch.device("cpu"))

    @staticmethod
    def _net(device: torch.device) -> nn.Module:
        from gradleak.priors.realesrgan import load_realesrgan

        return load_realesrgan().to(device)


def check_options(options: PriorOptions) -> ImagePrior:
    """The named prior, its options checked; a ConfigError for a stage it cannot run."""
    prior = PRIORS.get(options.name)()
    prior.check(options)
    if options.decoder_iterations and type(prior).decoder is ImagePrior.decoder:
        raise ConfigError(
            f"attack.options.prior.decoder_iterations: the {options.name} prior has no decoder"
        )
    if not options.refine and not options.decoder_iterations:
        raise ConfigError(
            "attack.options.prior does nothing with refine: false and decoder_iterations: 0"
        )
    return prior
