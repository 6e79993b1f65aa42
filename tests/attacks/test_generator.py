"""FedLeak's generator follows the authors' channel layout by default (256 channels up to 32 px,
128 at 64 px, 64 at 128 px); the constant-width layout stays available as ``wide``.

The parameter counts are derived by hand from the authors' ``Generator`` (ConvT 4×4 128→256 with
bias, BatchNorm, ConvBlocks of two biased 3×3 convolutions each followed by BatchNorm, a biased
1×1 convolution to RGB; spectral norm adds buffers, not parameters):
32²: 524,544 + 512 + 4 × 1,181,184 + 771 = 5,250,563;
64²: 5,250,563 − 771 + 443,136 (256→128 block) + 387 = 5,693,315;
128²: 5,693,315 − 387 + 110,976 (128→64 block) + 195 = 5,804,099.
"""

from __future__ import annotations

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.fedleak import FedLeak
from gradleak.attacks.generator import ImageGenerator
from gradleak.attacks.parametrizations import GeneratorParametrization
from gradleak.config import AttackConfig
from gradleak.errors import ConfigError, UnknownNameError

AUTHORS = {32: 5_250_563, 64: 5_693_315, 128: 5_804_099}
WIDE = {32: 5_250_563, 64: 6_431_747, 128: 7_612_931}


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("size", [32, 64, 128])
def test_parameter_counts_of_both_layouts(size: int) -> None:
    assert count(ImageGenerator(size, 3, layout="authors")) == AUTHORS[size]
    assert count(ImageGenerator(size, 3, layout="wide")) == WIDE[size]


def test_authors_layout_halves_the_channels_above_32_px() -> None:
    net = ImageGenerator(128, 3)
    outs = [net.first[0].parametrizations.weight.original.shape[0]]
    outs += [stage[0].parametrizations.weight.original.shape[0] for stage in net.stages]
    assert outs == [256, 256, 256, 256, 128, 64]  # blocks at 4, 8, 16, 32, 64, 128 px
    assert net.to_image.in_channels == 64


@pytest.mark.parametrize("size", [32, 64, 128])
def test_output_is_an_image_batch_in_the_unit_box(size: int) -> None:
    torch.manual_seed(0)
    net = ImageGenerator(size, 3, latent_dim=16, width=16).train()
    images = net(torch.randn(2, 16)).detach()
    assert images.shape == (2, 3, size, size)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(images.std()) > 0.0


def test_fedleak_defaults_to_the_authors_layout() -> None:
    factory, settings = FedLeak(AttackConfig(name="fedleak")).parametrization()
    assert settings.layout == "authors" and settings.width == 256
    param = factory((1, 3, 64, 64), torch.Generator().manual_seed(0), torch.device("cpu"), settings)
    assert isinstance(param, GeneratorParametrization)
    assert count(param.net) == AUTHORS[64]


def test_wide_layout_is_an_option() -> None:
    config = AttackConfig(name="fedleak", options={"generator_layout": "wide"})
    factory, settings = FedLeak(config).parametrization()
    param = factory((1, 3, 64, 64), torch.Generator().manual_seed(0), torch.device("cpu"), settings)
    assert isinstance(param, GeneratorParametrization)
    assert count(param.net) == WIDE[64]


def test_unknown_layout_fails_when_the_attack_is_built() -> None:
    config = AttackConfig(name="fedleak", options={"generator_layout": "narrow"})
    with pytest.raises((UnknownNameError, ConfigError), match="generator_layout"):
        ATTACKS.get("fedleak")(config)


def test_layouts_are_the_same_network_up_to_32_px() -> None:
    # Runs at 32² and below reproduce bit for bit whichever layout is chosen.
    torch.manual_seed(1)
    authors = ImageGenerator(32, 3, layout="authors").state_dict()
    torch.manual_seed(1)
    wide = ImageGenerator(32, 3, layout="wide").state_dict()
    assert list(authors) == list(wide)
    assert all(torch.equal(authors[k], wide[k]) for k in authors)
