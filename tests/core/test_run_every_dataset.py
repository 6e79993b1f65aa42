"""`gradleak run` with --set overrides works on every data set the foundation reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from gradleak.cli import main

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")


def _image_folder(root: Path, data_root: Path) -> Path:
    """A class-per-subfolder image folder made from real CelebA photos."""
    faces = sorted((data_root / "celeba_subset" / "img_align_celeba").glob("*.jpg"))[:4]
    for i, face in enumerate(faces):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(face).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("cifar10", 3),
        ("cifar100", 3),
        ("mnist", 1),
        ("celeba", 3),
        ("samples", 3),
        ("imagefolder", 3),
    ],
)
def test_run_on_dataset(
    name: str, channels: int, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _image_folder(tmp_path / "folder", data_root) if name == "imagefolder" else data_root
    out = tmp_path / "run"
    args = [
        "run",
        DEMO,
        "--output",
        str(out),
        "--set",
        f"data.name={name}",
        "--set",
        f"data.root={root}",
        "--set",
        "model.name=lenet_dlg",
        "--set",
        "attack.iterations=3",
        "--set",
        "federation.batch_size=2",
        "--set",
        "metrics.lpips=false",
    ]
    monkeypatch.setattr("sys.argv", ["gradleak", *args])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_scored_images"] == 2
    assert metrics["iterations"] == 3
    truth_shape = torch.load(out / "tensors.pt")["truth"].shape
    assert tuple(truth_shape) == (2, channels, 32, 32)
