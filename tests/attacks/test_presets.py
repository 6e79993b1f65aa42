"""The protocol presets validate and agree with the table ``gradleak protocol`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradleak.cli import app
from gradleak.commands.protocol import PROTOCOL
from gradleak.config import load_config

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "presets"


@pytest.mark.parametrize("preset", ["realistic", "easy"])
def test_preset_matches_the_protocol_table(preset: str) -> None:
    config = load_config(PRESETS / f"{preset}.yaml").model_dump()
    for row in PROTOCOL:
        value = config
        for part in row.key.split("."):
            value = value[part]
        assert value == getattr(row, preset), row.key


def test_protocol_command_prints_the_table() -> None:
    result = CliRunner().invoke(app, ["protocol"])
    assert result.exit_code == 0
    assert "dirichlet" in result.stdout and "local steps" in result.stdout
