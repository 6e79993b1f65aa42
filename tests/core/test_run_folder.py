"""The run folder: refused before the attack when unusable, never silently replaced, and never
looking finished (metrics.json) unless every file was written."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from gradleak.cli import main

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
TINY = [
    "--set",
    "data.max_images=1",
    "--set",
    "federation.batch_size=1",
    "--set",
    "model.width=4",
    "--set",
    "metrics.lpips=false",
]


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def tiny_run(out: Path, iterations: int, *extra: str) -> list[str]:
    return [
        "run",
        DEMO,
        "--output",
        str(out),
        *TINY,
        "--set",
        f"attack.iterations={iterations}",
        *extra,
    ]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def no_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the experiment starts: the folder must be refused before it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the experiment started before the output folder was checked")

    monkeypatch.setattr("gradleak.experiments.runner.run_experiment", refuse)


@pytest.mark.usefixtures("no_experiment")
def test_output_that_is_a_file_is_refused_before_the_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    assert run_cli(tiny_run(taken, 2), monkeypatch) == 2
    assert "is a file" in one_line_error(capsys)
    assert run_cli(tiny_run(taken / "run", 2), monkeypatch) == 2
    assert "which is a file" in one_line_error(capsys)
    assert taken.read_text() == "not a folder"


@pytest.mark.usefixtures("no_experiment")
def test_unwritable_output_folder_is_refused_before_the_attack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unwritable = Path("/proc/self")  # a real folder no one, root included, can create files in
    if not unwritable.is_dir():
        pytest.skip("needs Linux /proc")
    assert run_cli(tiny_run(unwritable, 2), monkeypatch) == 2
    assert "not writable" in one_line_error(capsys)


@pytest.mark.usefixtures("no_experiment")
def test_read_only_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert run_cli(tiny_run(folder / "run", 2), monkeypatch) == 2
        assert "not writable" in one_line_error(capsys)
    finally:
        folder.chmod(0o700)


@pytest.mark.usefixtures("no_experiment")
def test_full_disk_is_refused_before_the_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    real = shutil.disk_usage

    def full(path: object) -> object:
        return real(path)._replace(free=0)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "disk_usage", full)
    assert run_cli(tiny_run(tmp_path / "run", 2), monkeypatch) == 2
    assert "bytes free" in one_line_error(capsys)


def test_earlier_run_is_kept_unless_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert run_cli(tiny_run(out, 2), monkeypatch) == 0
    first = (out / "metrics.json").read_text()
    capsys.readouterr()
    assert run_cli(tiny_run(out, 3), monkeypatch) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert (out / "metrics.json").read_text() == first
    assert run_cli([*tiny_run(out, 3), "--overwrite"], monkeypatch) == 0
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 3


def test_demo_replaces_its_folder_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-output"
    args = ["demo", "--output", str(out), *TINY, "--set", "attack.iterations=2"]
    assert run_cli(args, monkeypatch) == 0
    assert "replacing" not in capsys.readouterr().err
    assert run_cli(args, monkeypatch) == 0
    assert f"replacing the earlier run in {out}" in capsys.readouterr().err


def test_full_disk_while_writing_keeps_what_was_written_and_never_looks_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("gradleak.experiments.outcomes.save_reconstruction_grid", no_space)
    out = tmp_path / "run"
    assert run_cli(tiny_run(out, 2), monkeypatch) == 2
    err = one_line_error(capsys)
    assert os.strerror(errno.ENOSPC) in err and "reconstruction.png" in err
    assert (out / "config.yaml").is_file()
    assert not (out / "metrics.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_metrics_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradleak.experiments import run_folder

    order: list[str] = []
    real = os.replace

    def record(src: object, dst: object) -> None:
        order.append(Path(str(dst)).name)
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(run_folder.os, "replace", record)
    assert run_cli(tiny_run(tmp_path / "run", 2), monkeypatch) == 0
    assert order[-1] == "metrics.json"
    assert set(order) == {"config.yaml", "reconstruction.png", "tensors.pt", "metrics.json"}


def test_failed_atomic_write_leaves_neither_file_nor_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradleak.experiments import run_folder

    target = tmp_path / "metrics.json"

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_folder.os, "fsync", no_space)
    with pytest.raises(OSError):
        run_folder.write_atomic(target, b"{}")
    assert list(tmp_path.iterdir()) == []


def test_library_run_refuses_an_unusable_folder_before_the_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradleak.config import validate_config
    from gradleak.errors import OutputError
    from gradleak.experiments.runner import run_experiment

    class NoThreats:
        """Stands in for the runner's threat registry: building a scenario fails the test."""

        def get(self, name: str) -> None:
            raise AssertionError("the scenario was built before the output folder was checked")

    monkeypatch.setattr("gradleak.experiments.runner.THREATS", NoThreats())
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    with pytest.raises(OutputError, match="is a file"):
        run_experiment(validate_config({"attack": {"iterations": 2}}), taken)
