"""Hostile YAML in config and sweep files and in --set values: one line, exit 2, never a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradleak.cli import main
from gradleak.config import dump_config, load_config, validate_config
from gradleak.errors import ConfigError
from gradleak.experiments.sweep import load_sweep
from gradleak.yaml_io import MAX_DEPTH, MAX_YAML_BYTES

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": each level lists the previous one nine times."""
    lines = [
        "attack:",
        "  options:",
        '    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"    l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("seed: 1\nattack:\n  iterations: 5\nseed: 2\n", "'seed'", 4),
        ("attack:\n  iterations: 5\nfederation:\n  rounds: 2\nattack:\n  lr: 0.5\n", "'attack'", 5),
        ("attack:\n  iterations: 5\n  lr: 0.1\n  iterations: 6\n", "'iterations'", 4),
        ("attack:\n  options:\n    prior:\n      steps: 3\n      steps: 4\n", "'steps'", 5),
    ],
)
def test_duplicate_keys_at_any_depth_name_the_key_and_line(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"duplicate key {key}" in message and f"line {line}" in message and str(path) in message
    assert "\n" not in message


def test_alias_bomb_in_free_form_options_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 1000
    with pytest.raises(ConfigError, match="alias"):
        load_config(path)


def test_merge_keys_and_aliases_in_set_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("attack:\n  <<: {iterations: 3}\n")
    with pytest.raises(ConfigError, match="merge"):
        load_config(path)
    with pytest.raises(ConfigError, match="alias"):
        load_config(DEMO, ["attack.options.x=[*a, *a]"])


def test_written_config_reads_back_when_values_are_shared(tmp_path: Path) -> None:
    shared = {"steps": 3}
    config = validate_config({"attack": {"options": {"a": shared, "b": shared}}})
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "config.fifo"
    os.mkfifo(path)
    return path


def _write(name: str, data: bytes):  # type: ignore[no-untyped-def]
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            _write("latin1.yaml", "seed: 0\nattack:\n  name: \xe9t\xe9\n".encode("latin-1")),
            "not UTF-8",
        ),
        (_write("image.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "binary"),
        (lambda tmp_path: tmp_path, "is a directory"),
        (_fifo, "not a regular file"),
        (lambda tmp_path: Path(os.devnull), "not a regular file"),
        (_write("huge.yaml", b"# padding\n" * (MAX_YAML_BYTES // 10 + 1)), "limit"),
        (
            _write("deep.yaml", b"seed: " + b"[" * (MAX_DEPTH * 50) + b"]" * (MAX_DEPTH * 50)),
            "nested",
        ),
        (_write("list.yaml", b"- seed: 1\n"), "mapping of sections, got list"),
        (_write("scalar.yaml", b"42\n"), "mapping of sections, got int"),
    ],
    ids=["non-utf8", "binary", "directory", "fifo", "device", "huge", "deep", "list", "scalar"],
)
def test_unusable_config_file_is_one_line_exit_2(
    make,  # type: ignore[no-untyped-def]
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make(tmp_path)
    assert run_cli(["run", str(path), "--output", str(tmp_path / "out")], monkeypatch) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_non_utf8_sweep_file_and_base_are_config_errors(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_bytes(b"name: caf\xe9\ngrid:\n  seed: [0, 1]\n")
    with pytest.raises(ConfigError, match=r"sweep file .* not UTF-8"):
        load_sweep(sweep)
    base = tmp_path / "base.yaml"
    base.write_bytes(b"seed: 0\n\xff\n")
    sweep.write_text("base: base.yaml\ngrid:\n  seed: [0, 1]\n")
    with pytest.raises(ConfigError, match=r"config file .*base.yaml is not UTF-8"):
        load_sweep(sweep)
    sweep.write_text("grid:\n  seed: [0, 1]\ngrid:\n  seed: [2]\n")
    with pytest.raises(ConfigError, match=r"sweep file .*duplicate key 'grid'"):
        load_sweep(sweep)
