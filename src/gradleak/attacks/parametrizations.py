"""How the dummy images are represented while they are optimised.

The representation is an implicit prior: pixels carry none, a low-resolution latent upsampled
bicubically forbids high frequencies (the curious-client attack), and an untrained convolutional
generator biases towards natural-looking images (FedLeak).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.attacks.generator import ImageGenerator
from gradleak.errors import ConfigError
from gradleak.registry import Registry


@dataclass(frozen=True)
class ParametrizationSettings:
    """Knobs of the parametrisations; each one reads only its own."""

    box: bool = True
    """Pixels: clamp to [0, 1] after every step (Inverting Gradients); DLG optimises unboxed."""
    scale: int = 4
    """Low-res latent: the image side divided by the latent side."""
    latent_dim: int = 128
    """Generator: size of the fixed code z per image."""
    width: int = 256
    """Generator: channels of its conv blocks up to 32 px (the authors use 256)."""
    layout: str = "authors"
    """Generator: how the channels change above 32 px, a name in ``generator.LAYOUTS``."""
    init: str = "uniform"
    """Pixels: the distribution of the starting draw, a name in :data:`INITS`: ``uniform`` on
    [0, 1] (Inverting Gradients) or ``normal`` N(0, 1) (the original DLG code's ``randn``)."""


Init = Callable[[tuple[int, ...], torch.Generator], Tensor]
"""(shape, generator) -> a starting draw of pixels."""

INITS: Registry[Init] = Registry("init")
INITS.register("uniform")(lambda shape, generator: torch.rand(shape, generator=generator))
INITS.register("normal")(lambda shape, generator: torch.randn(shape, generator=generator))


class Parametrization(ABC):
    """Owns the optimised tensors and maps them to images in [0, 1]."""

    @abstractmethod
    def parameters(self) -> list[Tensor]:
        """The leaf tensors an optimiser updates."""

    @abstractmethod
    def images(self) -> Tensor:
        """The current images, (B, C, H, W) (in [0, 1] after :meth:`project`)."""

    def project(self) -> None:  # noqa: B027 - a no-op default is the common case
        """Enforce constraints after an optimiser step (the box constraint for pixels)."""

    def start_from(self, images: Tensor) -> None:
        """Start from given images (B, C, H, W) in [0, 1] instead of the random draw (the
        public API's ``init``); a representation that cannot hold them says so."""
        raise ConfigError(
            f"init: the {type(self).__name__} cannot start from given images; "
            "use an attack whose options.parametrization is pixels or lowres"
        )

    def state(self) -> list[Tensor]:
        return [p.detach().clone() for p in self.parameters()]

    def load_state(self, state: list[Tensor]) -> None:
        with torch.no_grad():
            for p, s in zip(self.parameters(), state, strict=True):
                p.copy_(s)


class PixelParametrization(Parametrization):
    """Pixels optimised directly, optionally boxed to [0, 1] after each step."""

    def __init__(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
        settings: ParametrizationSettings,
    ) -> None:
        draw = INITS.get(settings.init)(shape, generator)
        self.pixels = draw.to(device).requires_grad_(True)
        self.box = settings.box

    def parameters(self) -> list[Tensor]:
        return [self.pixels]

    def images(self) -> Tensor:
        return self.pixels

    def start_from(self, images: Tensor) -> None:
        with torch.no_grad():
            self.pixels.copy_(images)

    def project(self) -> None:
        if self.box:
            with torch.no_grad():
                self.pixels.clamp_(0, 1)


class LowResParametrization(Parametrization):
    """A latent image ``scale`` times smaller, upsampled bicubically to the image size."""

    def __init__(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
        settings: ParametrizationSettings,
    ) -> None:
        batch, channels, height, width = shape
        small = (batch, channels, max(1, height // settings.scale), max(1, width // settings.scale))
        self.latent = torch.rand(small, generator=generator).to(device).requires_grad_(True)
        self.size = (height, width)

    def parameters(self) -> list[Tensor]:
        return [self.latent]

    def start_from(self, images: Tensor) -> None:
        """The images area-downsampled to the latent (what the curious client's refinement
        stages start from), so the upsampled start is their low-frequency part."""
        with torch.no_grad():
            self.latent.copy_(F.interpolate(images, size=self.latent.shape[-2:], mode="area"))

    def images(self) -> Tensor:
        up = F.interpolate(self.latent, size=self.size, mode="bicubic", align_corners=False)
        return up.clamp(0, 1)

    def project(self) -> None:
        with torch.no_grad():
            self.latent.clamp_(0, 1)


class GeneratorParametrization(Parametrization):
    """Images G_θ(z) of an untrained generator with fixed codes z; only θ is optimised."""

    def __init__(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
        settings: ParametrizationSettings,
    ) -> None:
        batch, channels, height, _ = shape
        self.code = torch.randn((batch, settings.latent_dim), generator=generator).to(device)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = ImageGenerator(
                height, channels, settings.latent_dim, settings.width, settings.layout
            )
        self.net.to(device).train()

    def parameters(self) -> list[Tensor]:
        return list(self.net.parameters())

    def images(self) -> Tensor:
        return self.net(self.code)

    def state(self) -> list[Tensor]:
        # Buffers too: spectral-norm power-iteration vectors shape the output.
        return [t.detach().clone() for t in self.net.state_dict().values()]

    def load_state(self, state: list[Tensor]) -> None:
        keys = list(self.net.state_dict())
        self.net.load_state_dict(dict(zip(keys, state, strict=True)))


ParametrizationFactory = Callable[
    [tuple[int, ...], torch.Generator, torch.device, ParametrizationSettings], Parametrization
]

PARAMETRIZATIONS: Registry[ParametrizationFactory] = Registry("parametrization")
PARAMETRIZATIONS.register("pixels")(PixelParametrization)
PARAMETRIZATIONS.register("lowres")(LowResParametrization)
PARAMETRIZATIONS.register("generator")(GeneratorParametrization)


class DecodedParametrization(Parametrization):
    """A latent ``scale`` times smaller, mapped to images by a frozen differentiable decoder
    (a learned ×``scale`` super-resolution prior) instead of bicubic upsampling."""

    def __init__(
        self,
        decoder: torch.nn.Module,
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
        settings: ParametrizationSettings,
    ) -> None:
        batch, channels, height, width = shape
        if height % settings.scale or width % settings.scale:
            raise ConfigError(
                f"a ×{settings.scale} decoder cannot make {height}×{width} images: "
                f"the sides are not multiples of {settings.scale}"
            )
        small = (batch, channels, height // settings.scale, width // settings.scale)
        self.latent = torch.rand(small, generator=generator).to(device).requires_grad_(True)
        self.decoder = decoder
        self.shape = tuple(shape)

    def parameters(self) -> list[Tensor]:
        return [self.latent]

    def start_from(self, images: Tensor) -> None:
        with torch.no_grad():
            self.latent.copy_(F.interpolate(images, size=self.latent.shape[-2:], mode="area"))

    def images(self) -> Tensor:
        out = self.decoder(self.latent)
        if tuple(out.shape) != self.shape:
            raise ConfigError(f"the decoder made {tuple(out.shape)} images, not {self.shape}")
        return out.clamp(0, 1)

    def project(self) -> None:
        with torch.no_grad():
            self.latent.clamp_(0, 1)


def decoded_by(decoder: torch.nn.Module) -> ParametrizationFactory:
    """A factory of :class:`DecodedParametrization` through ``decoder`` (not in the registry:
    it needs the decoder, which a config cannot name)."""

    def make(
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
        settings: ParametrizationSettings,
    ) -> Parametrization:
        return DecodedParametrization(decoder, shape, generator, device, settings)

    return make
