"""The FedLeak headline preset validates, reads the 16 showcase photos with their ImageNet
labels, and builds the torchvision-layout sigmoid ResNet-18 it names (no attack is run)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from gradleak.config import default_data_root, load_config
from gradleak.data import load_dataset
from gradleak.models import build_model

PRESET = Path(__file__).resolve().parents[2] / "configs" / "presets" / "fedleak_headline.yaml"


def test_preset_is_the_authors_case() -> None:
    config = load_config(PRESET)
    assert config.data.name == "fedleak_showcase" and config.data.image_size == 128
    assert config.model.name == "resnet18_imagenet" and config.model.activation == "sigmoid"
    assert config.model.train_mode and config.model.norm == "batchnorm"
    assert config.federation.batch_size == 16 and config.threat.knows_labels
    assert config.attack.name == "fedleak" and config.attack.labels == "given"
    assert config.attack.iterations == 10_000


def test_preset_model_has_1000_sigmoid_outputs() -> None:
    config = load_config(PRESET)
    torch.manual_seed(0)
    model = build_model(config.model, 1000, 3, config.data.image_size)
    assert any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, 1000)


def test_showcase_labels_come_from_the_csv() -> None:
    folder = default_data_root() / "fedleak_showcase"
    if not (folder / "images.csv").is_file():
        pytest.skip(f"no FedLeak showcase under {folder}")
    config = load_config(PRESET)
    data = load_dataset(config.data.model_copy(update={"image_size": 32}), 0)
    assert data.images.shape[0] == 16 and data.num_classes == 1000
    with (folder / "images.csv").open(newline="", encoding="utf-8") as handle:
        expected = {row["ImageId"]: int(row["TrueLabel"]) - 1 for row in csv.DictReader(handle)}
    assert sorted(data.labels.tolist()) == sorted(expected[k] for k in expected)
    assert len(set(data.labels.tolist())) > 1
