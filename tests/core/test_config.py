from pathlib import Path

import pytest

from gradleak.config import apply_overrides, dump_config, load_config, validate_config
from gradleak.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def test_demo_config_loads_and_round_trips(tmp_path: Path) -> None:
    config = load_config(DEMO)
    assert config.attack.name == "inverting_gradients"
    dumped = tmp_path / "config.yaml"
    dumped.write_text(dump_config(config))
    assert load_config(dumped) == config


def test_overrides_parse_yaml_values_and_create_sections() -> None:
    config = load_config(DEMO, ["attack.iterations=7", "federation.protocol=fedavg", "seed=3"])
    assert config.attack.iterations == 7
    assert config.federation.protocol == "fedavg"
    assert config.seed == 3
    raw = apply_overrides({}, ["attack.options.objective=l2"])
    assert raw == {"attack": {"options": {"objective": "l2"}}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("attack.iterationz=3", "config key 'attack.iterationz' does not exist"),
        ("data.image_size=0", "data.image_size"),
        ("federation.batch_size=-2", "federation.batch_size"),
        ("federation.protocol=fedprox", "federation.protocol"),
        ("noequals", "key.path=value"),
    ],
)
def test_bad_values_are_one_line_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DEMO, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("attack: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)


def test_validate_rejects_section_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError):
        validate_config({"attack": 3})
