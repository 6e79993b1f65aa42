"""Check before work: every mistake a config can hold is refused before any data is read.

The data set is CIFAR-10 under an empty folder, so reading any data raises a ``DataError``: a
mistake caught only after the data was read (or the federation built) shows up as that
``DataError`` instead of the one-line ``ConfigError`` naming the key at fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradleak.attacks.regularizers import BatchNormMatching
from gradleak.cli import main
from gradleak.config import ModelConfig, validate_config
from gradleak.errors import ConfigError
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.sweep import load_sweep
from gradleak.models import build_model

SERVER: dict[str, Any] = {
    "data": {"name": "cifar10", "max_images": 2, "image_size": 16},
    "model": {"name": "convnet", "width": 4},
    "federation": {"num_clients": 2, "batch_size": 1},
    "attack": {"name": "inverting_gradients", "iterations": 1},
    "metrics": {"lpips": False},
}
MALICIOUS: dict[str, Any] = {
    "data": {"name": "cifar10", "max_images": 5, "image_size": 16},
    "model": {"name": "lenet_dlg"},
    "federation": {"num_clients": 5, "batch_size": 1, "protocol": "fedavg"},
    "defense": {"aggregator": {"name": "krum", "num_byzantine": 1}},
    "threat": {
        "attacker": "malicious_peer",
        "attacker_client": 0,
        "victim": 1,
        "knows_labels": True,
    },
    "attack": {"name": "malicious_client", "iterations": 1, "labels": "given"},
    "metrics": {"lpips": False},
}

# (base, {dotted key: value}, what the one line must say, what it must not say)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str], list[str]]] = {
    "attack option typo": (
        SERVER,
        {"attack.options": {"objektive": "cosine"}},
        ["attack.options.objektive"],
        [],
    ),
    "objective name": (
        SERVER,
        {"attack.options": {"objective": "cosinus"}},
        ["attack.options.objective", "cosinus"],
        [],
    ),
    "parametrization name": (
        SERVER,
        {"attack.options": {"parametrization": "pixel"}},
        ["attack.options.parametrization"],
        [],
    ),
    "dlg optimizer name": (
        SERVER,
        {"attack.name": "dlg", "attack.options": {"optimizer": "lbfgz"}},
        ["attack.options.optimizer"],
        [],
    ),
    "fedleak option typo": (
        SERVER,
        {"attack.name": "fedleak", "attack.options": {"mask": "x"}},
        ["attack.options.mask"],
        [],
    ),
    "strategy option typo": (
        MALICIOUS,
        {"threat.strategy_options": {"pussh": 1}},
        ["threat.strategy_options", "pussh"],
        [],
    ),
    "byzantine option typo": (
        SERVER,
        {"federation.byzantine": [{"name": "sign_flip", "clients": [1], "options": {"scal": 2.0}}]},
        ["federation.byzantine[0]", "scal"],
        [],
    ),
    "byzantine name": (
        SERVER,
        {"federation.byzantine": [{"name": "sign_flop", "clients": [1]}]},
        ["sign_flop"],
        [],
    ),
    "data set name": (SERVER, {"data.name": "cifar11"}, ["data.name", "cifar11"], []),
    "model name": (SERVER, {"model.name": "lenet"}, ["model.name", "lenet"], []),
    "aggregator name": (
        SERVER,
        {"defense.aggregator.name": "krums"},
        ["defense.aggregator.name", "krums"],
        [],
    ),
    "bn matching without batchnorm": (
        SERVER,
        {"model.norm": "none", "threat.knows_buffers": True, "attack.options": {"bn_weight": 0.1}},
        ["attack.options.bn_weight", "BatchNorm"],
        [],
    ),
    "labels not granted": (SERVER, {"attack.labels": "given"}, ["knows_labels"], ["knows_buffers"]),
    "buffers not granted": (
        SERVER,
        {"attack.options": {"bn_weight": 0.1}},
        ["knows_buffers"],
        ["knows_labels"],
    ),
    "uploads not sendable": (
        SERVER,
        {"attack.name": "malicious_client"},
        ["may_send_arbitrary_updates"],
        ["knows_labels", "knows_buffers"],
    ),
}


def configured(base: dict[str, Any], changes: dict[str, Any], root: Path) -> dict[str, Any]:
    raw = yaml.safe_load(yaml.safe_dump(base))
    raw["data"]["root"] = str(root)
    for key, value in changes.items():
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def assert_one_line(message: str, says: list[str], never: list[str]) -> None:
    assert "\n" not in message
    for text in says:
        assert text in message, (text, message)
    for text in never:
        assert text not in message, (text, message)


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_experiment_refuses_before_reading_any_data(case: str, tmp_path: Path) -> None:
    base, changes, says, never = CASES[case]
    config = validate_config(configured(base, changes, tmp_path / "empty"))
    with pytest.raises(ConfigError) as info:
        run_experiment(config, tmp_path / "run")
    assert_one_line(str(info.value), says, never)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_bad_cell_fails_the_whole_sweep_at_expansion(case: str, tmp_path: Path) -> None:
    base, changes, says, never = CASES[case]
    good = configured(base, {}, tmp_path / "empty")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(good))
    bad_cell = {"seed": 1, **changes}
    spec = {
        "base": "base.yaml",
        "grid": {
            "seed+" + "+".join(changes): [
                [0, *[_value_at(good, k) for k in changes]],
                list(bad_cell.values()),
            ]
        },
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError) as info:
        load_sweep(tmp_path / "sweep.yaml")
    assert_one_line(str(info.value), ["sweep run (seed=1", *says], never)


def _value_at(raw: dict[str, Any], key: str) -> Any:
    """The good cell's value at ``key``: the base's, or the schema default."""
    node: Any = validate_config(raw).model_dump(mode="json")
    for part in key.split("."):
        node = node[part]
    return node


def test_cli_refuses_with_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(
            configured(SERVER, {"attack.options": {"objective": "cosinus"}}, tmp_path / "empty")
        )
    )
    monkeypatch.setattr("sys.argv", ["gradleak", "run", str(path), "--output", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "attack.options.objective" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_batchnorm_matching_on_a_model_without_batchnorm_is_a_config_error() -> None:
    model = build_model(ModelConfig(name="convnet", norm="none", width=4), 10, 3, 16)
    with pytest.raises(ConfigError, match="bn_weight"):
        BatchNormMatching(model, {})
