"""Values that validate as their type but cannot run: refused at load, one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradleak.cli import main
from gradleak.config import MAX_BATCH, MAX_CLIENTS, MAX_IMAGE_SIZE, load_config
from gradleak.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def _no_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the experiment must not start")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("seed=-1", "seed"),
        (f"seed={2**64}", "seed"),
        (f"seed={2**63}", "seed"),
        ("threads=100000", "threads"),
        ("attack.restarts=100000000", "attack.restarts"),
        ("device=meta", "device"),
        ("device=mps", "device"),
        ("device=cuda:x", "device"),
        ("attack.lr=.inf", "attack.lr"),
        ("attack.lr=.nan", "attack.lr"),
        ("attack.tv_weight=.inf", "attack.tv_weight"),
        ("federation.local_lr=.inf", "federation.local_lr"),
        ("federation.momentum=.nan", "federation.momentum"),
        ("federation.server_lr=1e999", "federation.server_lr"),
        ("data.partition.alpha=.inf", "data.partition.alpha"),
        ("defense.dp_sgd.noise_multiplier=.inf", "defense.dp_sgd.noise_multiplier"),
        (f"data.image_size={MAX_IMAGE_SIZE + 1}", "data.image_size"),
        (f"federation.batch_size={MAX_BATCH + 1}", "federation.batch_size"),
        (f"federation.num_clients={MAX_CLIENTS + 1}", "federation.num_clients"),
    ],
)
def test_impossible_values_are_refused_at_load(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DEMO, [override])
    assert f"config value {key}" in str(info.value)
    assert "\n" not in str(info.value)


def test_largest_seed_is_accepted() -> None:
    assert load_config(DEMO, [f"seed={2**63 - 1}"]).seed == 2**63 - 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (f"seed={2**64}", "seed"),
        ("device=meta", "'meta' is not cpu, cuda, cuda:N or auto"),
        ("attack.lr=.inf", "attack.lr"),
        ("attack.options.bn_weight=.nan", "bn_weight"),
        (
            f"data.image_size={MAX_IMAGE_SIZE}",
            "of memory is available",
        ),
    ],
)
def test_cli_refuses_before_any_work(
    override: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "image_size" in override:  # a size product no machine holds, each factor within bounds
        extra = [
            "--set",
            f"federation.batch_size={MAX_BATCH}",
            "--set",
            "federation.num_clients=10000",
        ]
    else:
        extra = []
        monkeypatch.setattr("gradleak.experiments.runner.run_experiment", _no_run)
    args = ["run", str(DEMO), "--output", str(tmp_path / "out"), "--set", override, *extra]
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("attack.iterations", "key.path=value"),
        ("=3", "key.path=value"),
        ("seed=[1]", "config value seed"),
        ("seed={a: 1}", "config value seed"),
        ("seed.x=1", "'seed' is not a section"),
        ("federation.byzantine=[{name: sign_flip, clients: [0]}]", ""),
        ("federation.byzantine.0.name=x", "config value federation.byzantine"),
        ("attack..iterations=3", "may not have empty parts"),
        ("attack.iterations.=3", "may not have empty parts"),
        ("attack=[1, 2]", "config value attack"),
        ("federation=null", "config value federation"),
        ("attack.options={a: 1, a: 2}", "duplicate key 'a'"),
    ],
)
def test_odd_set_values_are_one_line(
    override: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("gradleak.experiments.runner.run_experiment", _no_run)
    args = ["run", str(DEMO), "--output", str(tmp_path / "out"), "--set", override]
    if override.startswith("federation.byzantine=["):
        args += ["--set", "federation.byzantine.0.name=x"]
        expected = "'byzantine' is not a section"
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
