"""Impossible federations fail with one line and exit status 2; the server threat attacks the
federation's real round."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from federation_helpers import config_with, federation_for

from gradleak import cli
from gradleak.config import ExperimentConfig
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.errors import ConfigError, GradleakError
from gradleak.experiments.threats import THREATS
from gradleak.fl.functional import local_update

SAMPLES = {
    "data": {"name": "samples", "image_size": 16},
    "model": {"name": "mlp", "width": 1},
    "federation": {"num_clients": 3, "batch_size": 2, "rounds": 1},
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("federation.clients_per_round=5", "clients_per_round=5 exceeds"),
        ("defense.aggregator.name=krum", "krum"),
        ("federation.num_clients=12", "samples"),
        (
            "defense.client=[{name: clip_noise, clip_norm: 1.0, noise_multiplier: -1.0}]",
            "noise_multiplier",
        ),
        ("defense.dp_sgd={delta: 1.5}", "delta"),
    ],
)
def test_impossible_federations_exit_with_status_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    override: str,
    message: str,
) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(SAMPLES))
    extra = ["--set", "defense.aggregator.num_byzantine=1"] if "krum" in override else []
    argv = [
        "gradleak",
        "train",
        str(config),
        "--output",
        str(tmp_path / "out"),
        "--set",
        override,
        *extra,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_round_that_samples_too_many_clients_is_refused_in_python() -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        federation_for(config_with("federation.clients_per_round=9"))


def test_a_partition_leaving_a_client_without_a_batch_is_refused() -> None:
    with pytest.raises(GradleakError, match="client"):
        federation_for(config_with("federation.num_clients=20"))


def run_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: str) -> dict:
    """``gradleak train`` on the samples config with one ``--set``; its metrics.json."""
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(SAMPLES))
    out = tmp_path / "out"
    monkeypatch.setattr(
        sys, "argv", ["gradleak", "train", str(config), "--output", str(out), "--set", override]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    return yaml.safe_load((out / "metrics.json").read_text())


def test_train_writes_accuracy_per_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = run_train(tmp_path, monkeypatch, "federation.rounds=2")
    assert len(metrics["test_accuracy"]) == 2 and metrics["epsilon"] is None


def test_server_threat_at_round_k_sees_the_victims_real_upload() -> None:
    overrides = [
        "data.name=samples",
        "model.name=mlp",
        "model.width=1",
        "federation.num_clients=2",
        "federation.batch_size=3",
        "federation.protocol=fedavg",
        "federation.local_steps=2",
        "federation.rounds=3",
        "threat.round=2",
        "threat.victim=1",
        "data.partition.scheme=iid",
    ]
    config = config_with(*overrides)
    scenario = THREATS.get("server")(config, torch.device("cpu"))
    reference = federation_for(config, data=_samples(config))
    reference.run_until(2)
    start = dict(reference.parameters)
    reference.run_round()
    images, labels = reference.ground_truth(2, [1])
    for name, value in start.items():
        torch.testing.assert_close(scenario.target.parameters[name], value)
    initial = federation_for(config, data=_samples(config)).parameters
    assert not torch.equal(start["1.weight"], initial["1.weight"])
    expected, _ = local_update(
        reference.model,
        start,
        scenario.target.buffers,
        images,
        labels,
        reference.rules.protocol.schedule,
    )
    for name, value in expected.items():
        torch.testing.assert_close(scenario.target.observed_update[name], value)
    torch.testing.assert_close(scenario.truth.images, images)


def _samples(config: ExperimentConfig) -> ImageDataset:
    return load_dataset(config.data, config.seed)


def test_dp_sgd_training_reports_a_sample_level_epsilon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = run_train(tmp_path, monkeypatch, "defense.dp_sgd={noise_multiplier: 1.0}")
    assert metrics["epsilon"] > 0 and metrics["epsilon_unit"] == "sample"


def test_dp_sgd_refuses_batchnorm() -> None:
    with pytest.raises(ConfigError, match="BatchNorm"):
        federation_for(config_with("defense.dp_sgd={noise_multiplier: 1.0}"))
