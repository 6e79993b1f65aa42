"""LPIPS: checkpoint layout, loading from the hub cache, and the distance's basic properties.

Real weights are not available offline, so checkpoints with the official key layout and random
(non-negative, like the trained heads) values are written in the test and loaded back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from gradleak.errors import ConfigError, DataError
from gradleak.metrics import LPIPS, score_reconstruction
from gradleak.metrics.backbones import BACKBONES
from gradleak.metrics.lpips import default_head_path, hub_checkpoints

OFFICIAL_HEAD_KEYS = [f"lin{i}.model.1.weight" for i in range(5)]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, and no installed gradleak weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GRADLEAK_WEIGHTS", str(tmp_path / "gradleak-weights"))
    path = hub_checkpoints()
    path.mkdir(parents=True)
    return path


def write_checkpoints(backbone: str, head_path: Path) -> None:
    """A torchvision-layout backbone file (with a classifier to ignore) and official heads."""
    torch.manual_seed(0)
    features = BACKBONES.get(backbone).build()
    backbone_state = {f"features.{k}": v for k, v in features.state_dict().items()}
    backbone_state["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(backbone_state, hub_checkpoints() / BACKBONES.get(backbone).checkpoint)
    heads = {
        key: torch.rand(1, c, 1, 1)
        for key, c in zip(OFFICIAL_HEAD_KEYS, BACKBONES.get(backbone).channels, strict=True)
    }
    torch.save(heads, head_path)


def test_state_dict_has_the_official_and_torchvision_layout() -> None:
    keys = list(LPIPS("alex").state_dict())
    assert keys[:2] == ["features.0.weight", "features.0.bias"]
    assert keys[-5:] == OFFICIAL_HEAD_KEYS
    assert "features.28.weight" in LPIPS("vgg").state_dict()


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_loads_from_hub_cache(hub: Path, backbone: str, rgb_images: torch.Tensor) -> None:
    write_checkpoints(backbone, default_head_path(backbone))
    metric = LPIPS.load(backbone)
    assert metric is not None
    x = rgb_images[:2, :, :32, :32].float()
    y = rgb_images[2:4, :, :32, :32].float()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    levels = (0.02, 0.1, 0.4)
    noisy = [(x + level * noise).clamp(0, 1) for level in levels]
    # One batched call: identity, both orders of a pair, and three noise levels.
    out = metric(torch.cat([x, x, y, *noisy]), torch.cat([x, y, x, x, x, x])).view(-1, 2)
    assert torch.equal(out[0], torch.zeros(2))
    torch.testing.assert_close(out[1], out[2])
    distances = out[3:].mean(1)
    assert 0 < distances[0] < distances[1] < distances[2]


def test_loads_heads_from_a_given_path_and_gray_small_images(hub: Path, tmp_path: Path) -> None:
    heads = tmp_path / "alex.pth"
    write_checkpoints("alex", heads)
    metric = LPIPS.load("alex", heads)
    assert metric is not None
    x = torch.rand(2, 1, 16, 16)
    assert metric(x, torch.rand(2, 1, 16, 16)).shape == (2,)


def test_accepts_a_combined_checkpoint(tmp_path: Path, hub: Path) -> None:
    reference = LPIPS("alex")
    with torch.no_grad():
        for name in OFFICIAL_HEAD_KEYS:
            reference.state_dict()[name].uniform_()
    combined = tmp_path / "combined.pth"
    torch.save(reference.state_dict(), combined)
    metric = LPIPS.load("alex", combined)
    assert metric is not None
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(metric(x, y), reference(x, y))


def test_missing_weights_give_none_and_one_notice(
    hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gradleak.metrics.lpips"):
        assert LPIPS.load("alex") is None
    assert len(caplog.records) == 1
    assert "lpips_alex_v0.1.pth" in caplog.text and str(hub) in caplog.text
    assert "gradleak weights fetch lpips" in caplog.text
    torch.save(
        {
            k: torch.rand(1, c, 1, 1)
            for k, c in zip(OFFICIAL_HEAD_KEYS, BACKBONES.get("alex").channels, strict=True)
        },
        default_head_path("alex"),
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gradleak.metrics.lpips"):
        assert LPIPS.load("alex") is None
    assert len(caplog.records) == 1 and "alexnet-owt-7be5be79.pth" in caplog.text


def test_configured_path_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lpips_weights"):
        LPIPS.load("alex", tmp_path / "absent.pth")


def test_wrong_layout_is_a_data_error(tmp_path: Path, hub: Path) -> None:
    write_checkpoints("alex", default_head_path("alex"))
    wrong = tmp_path / "vgg_heads.pth"
    torch.save({k: torch.rand(1, 7, 1, 1) for k in OFFICIAL_HEAD_KEYS}, wrong)
    with pytest.raises(DataError, match="do not fit"):
        LPIPS.load("alex", wrong)


def test_score_reports_lpips_when_given(rgb_images: torch.Tensor) -> None:
    metric = LPIPS("alex")
    for module in metric.modules():
        if isinstance(module, nn.Conv2d) and module.bias is None:
            nn.init.uniform_(module.weight)
    truth = rgb_images.float()
    report = score_reconstruction(truth.flip(0), truth, lpips=metric)
    assert report.lpips_mean == pytest.approx(0.0, abs=1e-6)
    assert all("lpips" in row for row in report.per_image)
