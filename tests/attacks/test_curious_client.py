"""The curious-client attack end to end: config -> federation -> peer view -> reconstruction."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gradleak.attacks.base import ATTACKS
from gradleak.config import AttackConfig, load_config, validate_config
from gradleak.errors import ConfigError
from gradleak.experiments.runner import run_experiment


def small_peer_config(tmp_data: Path, **attack: object) -> dict:
    return {
        "data": {"name": "cifar10", "root": str(tmp_data), "max_images": 2, "image_size": 32},
        "model": {"name": "lenet5", "activation": "sigmoid"},
        "federation": {"num_clients": 2, "batch_size": 1, "protocol": "fedsgd", "local_lr": 0.01},
        "threat": {"attacker": "peer", "attacker_client": 0, "knows_labels": True},
        "attack": {"name": "curious_client", "iterations": 200, "labels": "given", **attack},
        "metrics": {"lpips": False},
    }


def test_short_run_reconstructs_the_peer_well_above_random(
    data_root: Path, tmp_path: Path, noise_psnr: Callable[[torch.Tensor], float]
) -> None:
    config = validate_config(small_peer_config(data_root))
    metrics = run_experiment(config, tmp_path)
    saved = torch.load(tmp_path / "tensors.pt")
    assert metrics["num_scored_images"] == 1
    assert metrics["psnr_mean"] > noise_psnr(saved["truth"]) + 4
    assert json.loads((tmp_path / "metrics.json").read_text())["threat"] == "peer"


def test_the_attackers_own_image_is_not_the_ground_truth(data_root: Path, tmp_path: Path) -> None:
    config = validate_config(small_peer_config(data_root, iterations=1))
    run_experiment(config, tmp_path)
    truth = torch.load(tmp_path / "tensors.pt")["truth"]
    raw = small_peer_config(data_root, iterations=1)
    raw["threat"]["attacker_client"] = 1
    run_experiment(validate_config(raw), tmp_path / "b")
    other = torch.load(tmp_path / "b" / "tensors.pt")["truth"]
    assert not torch.equal(truth, other), "each attacker scores the other client's image"


def test_recovered_labels_need_no_label_knowledge(data_root: Path, tmp_path: Path) -> None:
    raw = small_peer_config(data_root, iterations=5, labels="recovered")
    raw["threat"]["knows_labels"] = False
    metrics = run_experiment(validate_config(raw), tmp_path)
    assert metrics["label_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "nope"}, "unknown gradient objective"),
        ({"parametrization": "nope"}, "unknown parametrization"),
        ({"prior": {"model": "/nonexistent/prior", "method": "nope"}}, "unknown prior method"),
    ],
)
def test_bad_options_fail_when_the_attack_is_built(options: dict, message: str) -> None:
    pytest.importorskip("diffusers")
    with pytest.raises(ConfigError, match=message):
        ATTACKS.get("curious_client")(AttackConfig(name="curious_client", options=options))


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["curious_client.yaml", "curious_client_faces.yaml"])
def test_shipped_configs_run_and_score_the_three_peers_images(
    name: str, data_root: Path, tmp_path: Path
) -> None:
    """Both configs run as shipped (a few iterations): 12 peers' images, on the paper's LeNet;
    the recovered labels are regrouped between the three stages, as metrics.json records."""
    config = load_config(CONFIGS / name, [f"data.root={data_root}", "attack.iterations=2"])
    assert config.model.name == "lenet_rog"
    assert config.attack.labels == "recovered"
    metrics = run_experiment(config, tmp_path)
    assert metrics["num_scored_images"] == 12
    recorded = json.loads((tmp_path / "metrics.json").read_text())
    assert len(recorded["regroup_swaps"]) == 2 and "revived_images" in recorded
    assert torch.load(tmp_path / "tensors.pt")["reconstruction"].shape == (12, 3, 32, 32)


def test_lenet_rog_lets_the_cosine_attack_invert_a_peer_pair(
    data_root: Path, tmp_path: Path, noise_psnr: Callable[[torch.Tensor], float]
) -> None:
    """On the paper's LeNet two peer images come back far above noise in a short run (FedAvg)."""
    raw = small_peer_config(data_root, iterations=60)
    raw["data"]["max_images"] = 4
    raw["model"] = {"name": "lenet_rog", "activation": "relu"}
    raw["federation"].update(batch_size=2, protocol="fedavg", local_steps=2)
    raw["attack"]["options"] = {"objective": "cosine", "scale": 2, "refine_scales": []}
    metrics = run_experiment(validate_config(raw), tmp_path)
    saved = torch.load(tmp_path / "tensors.pt")
    assert metrics["num_scored_images"] == 2
    assert metrics["psnr_mean"] > noise_psnr(saved["truth"]) + 8


def test_progress_covers_every_refinement_stage(data_root: Path, tmp_path: Path) -> None:
    """The bar's length is what the stages report: restarts plus one run per finer scale."""
    raw = small_peer_config(data_root, iterations=3, restarts=2, log_every=1)
    raw["attack"]["options"] = {"scale": 4, "refine_scales": [2, 1]}
    config = validate_config(raw)
    reported: list[int] = []
    run_experiment(config, tmp_path, callback=lambda step, _loss: reported.append(step))
    completed, last = 0, 0
    for step in reported:  # as the progress bar counts: a step number that falls starts a stage
        completed += last if step < last else 0
        last = step
    assert completed + last == 3 * (2 + 2)
    assert ATTACKS.get("curious_client")(config.attack).total_iterations() == completed + last
