"""Bad input to ``gradleak attack --capture``: one line on stderr and exit status 2, never a
traceback, and nothing of a hostile store is unpickled."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest

from gradleak.cli import main
from gradleak.experiments.captures import GLOBAL, CaptureStore
from gradleak.integrations.flower import _flwr

MODEL = "gradleak_flower_example.task:Net"


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A capture of one round of the example's model: node 9 sent weights after one step."""
    from gradleak_flower_example.task import initial_model

    state = {k: v.numpy() for k, v in initial_model(0).state_dict().items()}
    path = tmp_path / "capture.sqlite"
    with CaptureStore.open(path) as captures:
        captures.put(1, GLOBAL, "global", state, config={"lr": 0.05, "server-round": 1})
        captures.put(1, 9, "reply", {k: v * 0.99 for k, v in state.items()}, num_examples=2)
    return path


def _evil_row(path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("echo pwned",))

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE captures SET arrays = ? WHERE kind = 'reply'", (pickle.dumps(Evil()),))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--node", "9", "--model", "nosuchmodel"], "not a registered model"),
        (["--node", "9", "--model", "no_such_module:Net"], "cannot load it"),
        (["--node", "9", "--model", "gradleak_flower_example.task:IMAGES"], "not callable"),
        (["--node", "9", "--model", "os:getcwd"], "not a torch.nn.Module"),
        (["--node", "9", "--model", "convnet"], "do not fit this model"),
        (["--node", "8", "--model", MODEL], "no reply captured in round 1 (nodes: [9])"),
        (["--node", "9", "--peer", "9", "--model", MODEL], "exactly one of --node"),
        (["--node", "9", "--model", MODEL, "--set", "attack.name=magic"], "unknown attack"),
        (["--node", "9", "--model", MODEL, "--set", "image_shape=[3,8]"], "image_shape"),
        (["--peer", "9", "--model", MODEL], "the global model after it was not captured"),
    ],
)
def test_hostile_arguments_are_one_line(
    store: Path, tmp_path: Path, args: list[str], expected: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["attack", "--capture", str(store), "--round", "1", "-o", str(tmp_path / "o"), *args]
    assert run_cli(argv, monkeypatch) == 2
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert expected in text and "Traceback" not in text and len(text.splitlines()) == 1
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_a_round_not_captured_names_the_captured_ones(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["attack", "--capture", str(store), "--round", "5", "--node", "9", "--model", MODEL]
    assert run_cli([*argv, "-o", str(tmp_path / "o")], monkeypatch) == 2
    assert "captured rounds: [1]" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["pickle", "not-a-store", "no-captures"])
def test_a_damaged_or_foreign_store_is_refused(
    store: Path, tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    if damage == "pickle":
        _evil_row(store)
    elif damage == "not-a-store":
        store = tmp_path / "other.sqlite"
        with sqlite3.connect(store) as conn:
            conn.execute("CREATE TABLE t (x)")
    else:
        store = tmp_path / "plain.sqlite"
        CaptureStore.open(store).close()
        with sqlite3.connect(store) as conn:
            conn.execute("DROP TABLE captures")
    argv = ["attack", "--capture", str(store), "--round", "1", "--node", "9", "--model", MODEL]
    assert run_cli([*argv, "-o", str(tmp_path / "o")], monkeypatch) == 2
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "error:" in out and "pwned" not in out and "Traceback" not in out


def test_without_flower_the_import_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_flwr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install 'gradleak\[flower\]'"):
        _flwr.require_flwr()
