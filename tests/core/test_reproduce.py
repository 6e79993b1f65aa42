"""A run folder's ``config.yaml`` reproduces the run: rerunning it gives the same metrics.

Each attack runs a tiny config that leaves ``attack.lr`` and ``attack.tv_weight`` unset (so the
attack's own defaults apply), then ``gradleak run <run>/config.yaml`` runs again from the folder.
Everything but the wall time must match exactly: the written file holds the effective settings,
not the config's generic defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradleak.cli import main
from gradleak.config import load_config, validate_config
from gradleak.experiments.runner import run_experiment

TINY_SERVER: dict[str, Any] = {
    "data": {"name": "samples", "image_size": 16, "max_images": 1},
    "model": {"name": "mlp", "width": 8},
    "federation": {"num_clients": 1, "batch_size": 1},
    "metrics": {"lpips": False},
}
TINY_PEER: dict[str, Any] = {
    "data": {"name": "cifar10", "image_size": 16, "max_images": 3},
    "model": {"name": "lenet_dlg", "activation": "sigmoid"},
    "federation": {"num_clients": 3, "batch_size": 1, "protocol": "fedsgd", "local_lr": 0.01},
    "threat": {"attacker": "peer", "attacker_client": 0, "knows_labels": True},
    "metrics": {"lpips": False},
}
TINY_MALICIOUS: dict[str, Any] = {
    **TINY_PEER,
    "threat": {
        "attacker": "malicious_peer",
        "attacker_client": 0,
        "victim": 1,
        "knows_labels": True,
    },
}
ATTACKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "dlg": (TINY_SERVER, {"iterations": 2}),
    "idlg": (TINY_SERVER, {"iterations": 2}),
    "inverting_gradients": (TINY_SERVER, {"iterations": 10}),
    "fedleak": (
        TINY_SERVER,
        {"iterations": 5, "options": {"generator_width": 16, "latent_dim": 8}},
    ),
    "curious_client": (TINY_PEER, {"iterations": 5, "labels": "given"}),
    "malicious_client": (TINY_MALICIOUS, {"iterations": 5, "labels": "given"}),
}


def tiny_config(name: str) -> dict[str, Any]:
    base, attack = ATTACKS[name]
    raw = yaml.safe_load(yaml.safe_dump(base))
    raw["attack"] = {"name": name, **attack}
    return raw


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a rerun must reproduce: all of them but the wall time."""
    return {
        k: v
        for k, v in json.loads(json.dumps(metrics, default=float)).items()
        if k != "wall_seconds"
    }


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_rerunning_the_written_config_reproduces_the_metrics(
    name: str, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tiny_config(name)
    raw["data"]["root"] = str(data_root)
    assert "lr" not in raw["attack"] and "tv_weight" not in raw["attack"]
    first = run_experiment(validate_config(raw), tmp_path / "first")
    monkeypatch.setattr(
        "sys.argv",
        [
            "gradleak",
            "run",
            str(tmp_path / "first" / "config.yaml"),
            "--output",
            str(tmp_path / "again"),
        ],
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert comparable(again) == comparable(first)
    assert len(first["trace"]) > 0


@pytest.mark.parametrize(("name", "lr", "tv_weight"), [("dlg", 1.0, 0.0), ("fedleak", 1e-2, 1e-5)])
def test_the_written_config_and_metrics_hold_the_effective_settings(
    name: str, lr: float, tv_weight: float, data_root: Path, tmp_path: Path
) -> None:
    raw = tiny_config(name)
    raw["data"]["root"] = str(data_root)
    raw["attack"]["iterations"] = 1
    metrics = run_experiment(validate_config(raw), tmp_path)
    written = load_config(tmp_path / "config.yaml").attack
    assert (written.lr, written.tv_weight) == (lr, tv_weight)
    assert metrics["effective"]["attack"]["lr"] == lr
    assert metrics["effective"]["attack"]["tv_weight"] == tv_weight


def test_sweep_ids_hash_the_effective_config() -> None:
    from gradleak.experiments.sweep import run_id

    unset = tiny_config("dlg")
    dlg_own = yaml.safe_load(yaml.safe_dump(unset))
    dlg_own["attack"].update(lr=1.0, tv_weight=0.0)
    generic = yaml.safe_load(yaml.safe_dump(unset))
    generic["attack"].update(lr=0.1, tv_weight=1e-4)
    assert run_id(validate_config(unset)) == run_id(validate_config(dlg_own))
    assert run_id(validate_config(unset)) != run_id(validate_config(generic))
