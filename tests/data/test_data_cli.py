"""Hostile data files through the real ``gradleak run``: exit status 2, one ``error:`` line that
names the file (after the run's two-line summary of what it is about to do), no traceback."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile_files import bomb_png, idx_bytes

from gradleak.cli import main

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")


def _bomb_folder(root: Path) -> tuple[str, str]:
    (root / "bomb.png").write_bytes(bomb_png())
    return "imagefolder", "bomb.png"


def _overflowing_mnist(root: Path) -> tuple[str, str]:
    folder = root / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(0x0803, (1 << 30, 1 << 30, 16)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(0x0801, (1,), b"\0"))
    return "mnist", "t10k-images-idx3-ubyte"


def _negative_cifar_labels(root: Path) -> tuple[str, str]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((8, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, 5, 6, -1]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=3))
    meta = {b"label_names": [b"c"] * 10}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=3))
    return "cifar10", "test_batch"


def _float_image_out_of_range(root: Path) -> tuple[str, str]:
    from PIL import Image

    Image.fromarray(np.full((8, 8), 7.5, np.float32)).save(root / "hot.tif")
    return "imagefolder", "hot.tif"


HOSTILE: dict[str, Callable[[Path], tuple[str, str]]] = {
    "decompression bomb": _bomb_folder,
    "overflowing idx header": _overflowing_mnist,
    "negative CIFAR label": _negative_cifar_labels,
    "float image out of range": _float_image_out_of_range,
}


def _argv(name: str, root: Path, out: Path) -> list[str]:
    return ["run", DEMO, "--set", f"data.name={name}", "--set", f"data.root={root}", "-o", str(out)]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_data_file_exits_2_with_one_line(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    name, culprit = HOSTILE[case](root)
    monkeypatch.setattr("sys.argv", ["gradleak", *_argv(name, root, tmp_path / "out")])
    monkeypatch.setenv("COLUMNS", "1000")  # one line, however long the path
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    output = captured.out + captured.err
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert info.value.code == 2, output
    assert len(errors) == 1 and culprit in errors[0], output
    assert "Traceback" not in output


def test_hostile_data_file_in_a_real_process(tmp_path: Path) -> None:
    """The console entry point as a user runs it: the process itself prints no traceback."""
    root = tmp_path / "data"
    root.mkdir()
    name, culprit = _bomb_folder(root)
    command = [sys.executable, "-c", "from gradleak.cli import main; main()"]
    done = subprocess.run(
        [*command, *_argv(name, root, tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "1000"},
    )
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, output
    assert len(errors) == 1 and culprit in errors[0], output
    assert "Traceback" not in output
