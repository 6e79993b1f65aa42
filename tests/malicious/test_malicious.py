"""The maliciously curious client: steering, reconstructability analysis, config errors, a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from gradleak.config import AggregatorConfig, DataConfig, ModelConfig, load_config
from gradleak.data import load_dataset
from gradleak.errors import ConfigError
from gradleak.experiments.malicious_analysis import Setting, analyse
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.threats.checks import check_malicious_threat
from gradleak.experiments.threats.malicious import malicious_peer
from gradleak.fl.aggregators import build_aggregator
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, local_update, split_state
from gradleak.fl.malicious.strategies import Estimate, RuleShape, build_strategy
from gradleak.models import build_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "malicious_client.yaml"
torch.set_num_threads(1)


def test_selection_steering_makes_krum_select_the_victim(data_root: Path) -> None:
    """Real FedAvg updates of 8 clients × 4 CIFAR-10 images; the attacker (client 0) estimates
    each victim's update from its own images relabelled with the victim's labels."""
    data = load_dataset(DataConfig(name="cifar10", max_images=32, image_size=32), 0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lenet5", activation="sigmoid"), 10, 3, 32)
    params, buffers = split_state(model)
    layout, schedule = ParamLayout.of(params), LocalSchedule(3, 0.01)

    def update(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return layout.flatten(local_update(model, params, buffers, x, y, schedule)[0])

    images, labels = data.images.float().view(8, 4, 3, 32, 32), data.labels.view(8, 4)
    honest = torch.stack([update(images[k], labels[k]) for k in range(1, 8)])
    own = update(images[0], labels[0])
    singles = torch.stack([update(images[0][i : i + 1], labels[0][i : i + 1]) for i in range(4)])
    spread = singles.std(dim=0, correction=0) / 2
    krum = build_aggregator(AggregatorConfig(name="krum", num_byzantine=1), 8)
    shape = RuleShape.of("krum", krum, 8, 1)
    strategy = build_strategy("selection_steering", "krum", {})
    hits = 0
    for victim in range(7):
        estimate = Estimate(update(images[0], labels[victim + 1]), own, spread)
        plan = strategy.plan(shape, estimate, torch.Generator().manual_seed(victim))
        selected = krum(torch.cat([honest, plan.uploads])).selected
        assert selected is not None
        hits += int(selected.item() == victim)
    assert hits >= 5


def test_coordinate_steering_concentrates_median_sources_on_the_victim() -> None:
    setting = Setting("median", 8, 3, estimate_error=0.2)
    honest = analyse(setting, "honest", trials=20)
    malicious = analyse(setting, "malicious", trials=20)
    assert malicious.victim_coordinates > honest.victim_coordinates + 0.1


def test_analysis_matches_closed_forms() -> None:
    for attacker in ("honest", "malicious"):
        mean = analyse(Setting("mean", 8, 1), attacker, trials=5)
        assert mean.victim_weight == pytest.approx(1 / 8)
        assert mean.closed_form == pytest.approx(1 / 8)
    krum = analyse(Setting("krum", 8, 1, estimate_error=0.1), "malicious", trials=10)
    assert krum.victim_weight == pytest.approx(1.0)
    assert krum.relative_error == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["threat.victim=0"], "must be an honest client"),
        (["threat.victim=8"], "must be an honest client"),
        (["threat.num_malicious=3", "threat.victim=5"], "too many for krum"),
        (["defense.aggregator.name=mean", "threat.strategy=selection_steering"], "does not apply"),
        (["threat.knows_labels=false", "attack.labels=recovered"], "knows_labels"),
        (["threat.strategy=nonsense"], "unknown malicious strategy"),
        (["defense.aggregator.name=median", "threat.await_victim=true"], "await_victim needs"),
    ],
)
def test_bad_inputs_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_malicious_threat(load_config(CONFIG, overrides))


@pytest.mark.parametrize(
    ("rule", "strategy", "scored"),
    [("krum", "auto", [1]), ("median", "auto", [1, 2, 3, 4, 5, 6, 7]), ("krum", "joint", [1])],
)
def test_end_to_end_scores_only_the_victims(
    data_root: Path, tmp_path: Path, rule: str, strategy: str, scored: list[int]
) -> None:
    config = load_config(
        CONFIG,
        [
            f"defense.aggregator.name={rule}",
            f"threat.strategy={strategy}",
            "threat.strategy_options={}"
            if strategy == "auto"
            else "threat.strategy_options={steps: 3, samples: 4}",
            "attack.iterations=2",
        ],
    )
    metrics = run_experiment(config, tmp_path)
    scenario = metrics["scenario"]
    assert scenario["scored_clients"] == scored
    assert metrics["num_scored_images"] == 4 * len(scored)
    assert "test_accuracy_honest" in scenario and scenario["stealth"][0]["round"] == 0


@pytest.mark.parametrize(
    ("rule", "passed"),
    [
        ("multikrum", lambda s: s["malicious_selected"] == 1.0 and s["victim_selected"]),
        ("trimmed_mean", lambda s: s["malicious_in_window"] > 0.5),
    ],
)
def test_joint_passes_the_rule_in_most_rounds(data_root: Path, rule: str, passed: Any) -> None:
    """Joint strategy end to end over 2 attacked rounds (step (a), the dummy inversion, runs in
    round 1): Multi-Krum selects the uploads and the victim, and under the trimmed mean the
    uploads' values stay inside the trimmed range on most coordinates, in every round."""
    overrides = [
        f"defense.aggregator.name={rule}",
        "threat.strategy=joint",
        "federation.rounds=2",
        "attack.iterations=2",
        "defense.aggregator.beta=0.25",
        "threat.strategy_options={steps: 3, samples: 4, inversion_steps: 1}",
    ]
    if rule == "trimmed_mean":
        overrides += ["threat.num_malicious=2", "threat.victim=2"]
    scenario = malicious_peer(load_config(CONFIG, overrides), torch.device("cpu"))
    stealth = scenario.summary["stealth"]
    assert scenario.summary["strategy"] == "joint" and len(stealth) == 2
    assert all(passed(s) for s in stealth)


def test_awaiting_the_victim_attacks_a_round_that_exposed_it(data_root: Path) -> None:
    """Faces labelled by client, seed 1: Krum exposes the victim in most rounds, and the
    attacker's belief (the exposed update's counted labels are the victim's) is never wrong."""
    config = load_config(
        CONFIG,
        [
            "data.name=celeba",
            "data.labels=client",
            "seed=1",
            "federation.rounds=3",
            "threat.await_victim=true",
        ],
    )
    summary = malicious_peer(config, torch.device("cpu")).summary
    stealth = summary["stealth"]
    assert summary["awaited_round"] is not None
    assert summary["observed_rounds"] == [summary["awaited_round"]]
    assert stealth[summary["awaited_round"]]["victim_selected"]
    for entry in stealth:
        assert not entry["attacker_sees_victim"] or entry["victim_selected"]
