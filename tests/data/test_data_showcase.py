"""The FedLeak showcase reader: labels from images.csv, one clear DataError for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradleak.data.showcase import read_showcase
from gradleak.errors import DataError

HEADER = "ImageId,URL,TrueLabel\n"


def write(root: Path, rows: str, names: tuple[str, ...] = ("a", "b")) -> None:
    images = root / "fedleak_showcase" / "images"
    images.mkdir(parents=True)
    for i, name in enumerate(names):
        pixels = np.full((8, 8, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{name}.png")
    (root / "fedleak_showcase" / "images.csv").write_text(HEADER + rows, encoding="utf-8")


def test_labels_are_zero_based_imagenet_classes(tmp_path: Path) -> None:
    write(tmp_path, "a,u,1\nb,u,1000\n")
    raw = read_showcase(tmp_path, "test", False)
    assert raw.labels.tolist() == [0, 999] and raw.num_classes == 1000


def test_photos_missing_from_the_csv_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "b,u,7\n")
    assert read_showcase(tmp_path, "test", False).labels.tolist() == [6]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("a,u,zero\n", "integer TrueLabel"),
        ("a,u,1001\n", r"not in 1\.\.1000"),
        ("c,u,3\n", "no image"),
    ],
)
def test_bad_tables_are_one_data_error(tmp_path: Path, rows: str, message: str) -> None:
    write(tmp_path, rows)
    with pytest.raises(DataError, match=message):
        read_showcase(tmp_path, "test", False)


def test_missing_folder_names_data_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.root"):
        read_showcase(tmp_path, "test", False)
