"""Bad input through the real CLI entry point: one line on stderr, exit status 2."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from gradleak.cli import main

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, ("echo pwned",))


def _write_cifar_with_evil_global(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}))


def _write_broken_imagefolder(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "broken.png").write_bytes(b"not an image at all")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.name=nosuchdata"], "unknown data set 'nosuchdata'; known:"),
        (["model.name=vgg99"], "unknown model 'vgg99'; known:"),
        (["attack.name=magic"], "unknown attack 'magic'; known:"),
        (["attack.itrations=5"], "config key 'attack.itrations' does not exist"),
        (["data.image_size=0"], "data.image_size"),
        (["federation.batch_size=0"], "federation.batch_size"),
        (["threat.victim=5"], "threat.victim"),
        (["device=cuda:7"], "cuda"),
        (
            ["data.labels=client", "data.partition.scheme=dirichlet"],
            "data.labels=client needs data.partition.scheme=iid",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(
    overrides: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["run", DEMO, "--output", "/tmp/gradleak-never-written"]
    for item in overrides:
        args += ["--set", item]
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_swapping_the_attack_of_a_preset_says_how_to_drop_its_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = str(Path(DEMO).parent / "presets" / "fedleak_b16_cpu.yaml")
    args = ["run", preset, "--set", "attack.name=inverting_gradients", "--output", "/tmp/never"]
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert "generator_width is not an option of inverting_gradients" in err
    assert "--set 'attack.options={}'" in err and len(err.splitlines()) == 1


def test_training_with_client_labels_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", DEMO, "--set", "data.labels=client", "--output", "/tmp/gradleak-never-written"]
    assert run_cli(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert "data.labels=client has no test set" in err
    assert len(err.splitlines()) == 1


def test_missing_data_set_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        ["run", DEMO, "--set", "data.name=cifar10", "--set", f"data.root={tmp_path}"], monkeypatch
    )
    assert code == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_pickle_with_foreign_global_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_cifar_with_evil_global(tmp_path)
    code = run_cli(
        ["run", DEMO, "--set", "data.name=cifar10", "--set", f"data.root={tmp_path}"], monkeypatch
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "system" in err and "Traceback" not in err


def test_unreadable_image_in_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "images"
    _write_broken_imagefolder(folder)
    code = run_cli(
        ["run", DEMO, "--set", "data.name=imagefolder", "--set", f"data.root={folder}"], monkeypatch
    )
    assert code == 2
    assert "broken.png" in capsys.readouterr().err


def test_missing_config_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "/nonexistent/config.yaml"], monkeypatch) == 2
    assert "does not exist" in capsys.readouterr().err


def test_debug_flag_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradleak.errors import ConfigError

    monkeypatch.setattr("sys.argv", ["gradleak", "--debug", "run", "/nonexistent/config.yaml"])
    with pytest.raises(ConfigError):
        main()


def test_datasets_command_lists_offline_sets(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["datasets", "--root", str(data_root)], monkeypatch) == 0
    out = capsys.readouterr().out
    for name in ("cifar10", "mnist", "celeba", "samples"):
        assert name in out
