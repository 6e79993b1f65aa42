"""The batch-16 CPU preset validates, runs a couple of iterations of FedLeak and of the Inverting
Gradients baseline it documents, and hands both attacks the same observed gradient."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gradleak.config import ExperimentConfig, load_config
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.threats import THREATS
from gradleak.runtime import isolated_runtime

PRESET = Path(__file__).resolve().parents[2] / "configs" / "presets" / "fedleak_b16_cpu.yaml"
BASELINE = ["attack.name=inverting_gradients", "attack.options={}", "attack.lr=0.025"]
"""The swap the preset's header documents: the baseline with its own defaults."""


def short(extra: list[str]) -> ExperimentConfig:
    """Two steps of each stage (the preset polishes FedLeak's images for 300 more)."""
    polish = [] if extra else ["attack.options.polish_iterations=2"]
    return load_config(PRESET, ["attack.iterations=2", *polish, *extra])


def test_preset_is_fedleak_at_batch_16() -> None:
    config = load_config(PRESET)
    assert config.attack.name == "fedleak" and config.attack.labels == "given"
    assert config.federation.batch_size == 16 and config.data.max_images == 16
    assert config.threat.knows_labels and config.device == "cpu"
    assert config.attack.options["polish_iterations"] == 300


@pytest.mark.parametrize("extra", [[], BASELINE], ids=["fedleak", "inverting_gradients"])
def test_preset_runs_a_couple_of_iterations(extra: list[str], tmp_path: Path) -> None:
    config = short(extra)
    metrics = run_experiment(config, tmp_path)
    stages = 2 if extra else 2 + 2  # the generator's steps, then polishing's
    assert metrics["attack"] == config.attack.name and metrics["iterations"] == stages
    assert math.isfinite(metrics["psnr_mean"]) and 3.0 < metrics["psnr_mean"] < 40.0
    assert (tmp_path / "metrics.json").is_file()


def test_both_attacks_see_the_same_gradient() -> None:
    observed = []
    for extra in ([], BASELINE):
        config = short(extra)
        with isolated_runtime(config.threads, config.seed):
            scenario = THREATS.get(config.threat.attacker)(config, torch.device("cpu"))
        observed.append(scenario.target.observed_update)
    assert observed[0].keys() == observed[1].keys()
    for name, grad in observed[0].items():
        torch.testing.assert_close(grad, observed[1][name], rtol=1e-6, atol=1e-9)
    assert any(float(g.abs().sum()) > 0 for g in observed[0].values())
