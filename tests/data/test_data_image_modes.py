"""Every image mode the image-folder reader accepts comes out in [0, 1] at its true scale, and
every broken image file (bombs, truncation, non-images, odd folders) is one DataError naming it.

The pattern is a 16 x 16 ramp over every 8-bit value: whatever the file's mode and bit depth,
the prepared pixels must equal ramp / 255 within 1/255 (exactly, for 16 bits: v * 257 / 65535).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import bomb_png, png_from_array
from PIL import Image

from gradleak.config import DataConfig
from gradleak.data import load_dataset
from gradleak.data.celeba import read_celeba
from gradleak.data.imagefolder import read_imagefolder
from gradleak.errors import DataError

RAMP = np.arange(256, dtype=np.uint8).reshape(16, 16)
EXPECTED = torch.from_numpy(RAMP.astype(np.float32) / 255.0)
WIDE = RAMP.astype(np.uint16) * 257  # the same ramp over the full 16-bit range


def _saved(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _palette() -> bytes:
    image = Image.fromarray(RAMP, "L").convert("P")
    image.putpalette([value for i in range(256) for value in (i, i, i)])
    image.putdata(RAMP.reshape(-1).tolist())
    return _saved(image, "PNG")


def _stack(*planes: np.ndarray) -> np.ndarray:
    return np.stack(planes, axis=2)


ALPHA = np.full_like(RAMP, 200)

MODES: dict[str, tuple[Callable[[], bytes], str, int]] = {
    # name: (file bytes, suffix, channels the reader keeps)
    "L": (lambda: _saved(Image.fromarray(RAMP, "L"), "PNG"), ".png", 1),
    "LA": (lambda: _saved(Image.fromarray(_stack(RAMP, ALPHA), "LA"), "PNG"), ".png", 1),
    "P": (_palette, ".png", 3),
    "RGB": (lambda: _saved(Image.fromarray(_stack(RAMP, RAMP, RAMP), "RGB"), "PNG"), ".png", 3),
    "RGBA": (
        lambda: _saved(Image.fromarray(_stack(RAMP, RAMP, RAMP, ALPHA), "RGBA"), "PNG"),
        ".png",
        3,
    ),
    "CMYK": (
        lambda: _saved(Image.fromarray(_stack(*[255 - RAMP] * 3, 0 * RAMP), "CMYK"), "TIFF"),
        ".tif",
        3,
    ),
    "I;16 png": (lambda: _saved(Image.fromarray(WIDE), "PNG"), ".png", 1),
    "I;16B tiff": (
        lambda: _saved(Image.frombytes("I;16B", (16, 16), WIDE.astype(">u2").tobytes()), "TIFF"),
        ".tif",
        1,
    ),
    "I tiff": (lambda: _saved(Image.fromarray(WIDE.astype(np.int32)), "TIFF"), ".tif", 1),
    "F tiff": (lambda: _saved(Image.fromarray(EXPECTED.numpy()), "TIFF"), ".tif", 1),
    "16-bit grey png": (lambda: png_from_array(WIDE[:, :, None]), ".png", 1),
    "16-bit grey+alpha png": (
        lambda: png_from_array(_stack(WIDE, WIDE // 2)),
        ".png",
        3,  # PIL reads 16-bit grey+alpha as 8-bit RGBA
    ),
    "16-bit RGB png": (lambda: png_from_array(_stack(WIDE, WIDE, WIDE)), ".png", 3),
    "16-bit RGBA png": (lambda: png_from_array(_stack(WIDE, WIDE, WIDE, WIDE)), ".png", 3),
}


def _prepared(folder: Path) -> torch.Tensor:
    return load_dataset(DataConfig(name="imagefolder", root=folder, image_size=16), 0).images


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_ramp_at_its_true_scale(mode: str, tmp_path: Path) -> None:
    write, suffix, channels = MODES[mode]
    (tmp_path / f"ramp{suffix}").write_bytes(write())
    images = _prepared(tmp_path)
    assert images.shape == (1, channels, 16, 16)
    error = (images[0] - EXPECTED).abs().max().item()
    assert error <= 1 / 255 + 1e-6, f"{mode}: off by {error * 255:.1f} grey levels"


def test_bilevel_images_are_black_and_white(tmp_path: Path) -> None:
    checker = (np.indices((16, 16)).sum(axis=0) % 2).astype(bool)
    Image.fromarray(checker).convert("1").save(tmp_path / "checker.png")
    images = _prepared(tmp_path)
    assert torch.equal(images[0, 0], torch.from_numpy(checker.astype(np.float32)))


def test_eight_and_sixteen_bit_files_share_one_scale(tmp_path: Path) -> None:
    """A 16-bit grey ramp beside an 8-bit colour one: both become the same RGB ramp."""
    (tmp_path / "a8.png").write_bytes(MODES["RGB"][0]())
    (tmp_path / "b16.png").write_bytes(png_from_array(WIDE[:, :, None]))
    images = _prepared(tmp_path)
    assert images.shape == (2, 3, 16, 16)
    assert (images - EXPECTED).abs().max().item() <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    ("name", "pixels", "message"),
    [
        ("over.tif", np.full((4, 4), 2.0, np.float32), r"over\.tif.*\[0, 1\]"),
        ("nan.tif", np.full((4, 4), np.nan, np.float32), r"nan\.tif.*NaN"),
        ("negative.tif", np.full((4, 4), -5, np.int32), r"negative\.tif.*0\.\.65535"),
    ],
)
def test_pixels_without_a_known_scale_are_refused(
    name: str, pixels: np.ndarray, message: str, tmp_path: Path
) -> None:
    Image.fromarray(pixels).save(tmp_path / name)
    with pytest.raises(DataError, match=message):
        read_imagefolder(tmp_path, "test", False)


def test_decompression_bomb_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(MODES["L"][0]())
    (tmp_path / "bomb.png").write_bytes(bomb_png())  # 1 073 741 824 pixels declared, 4 kB file
    with pytest.raises(DataError, match=r"bomb\.png.*decompression bomb"):
        read_imagefolder(tmp_path, "test", False)


def test_image_over_the_pixel_limit_is_refused_not_decoded(tmp_path: Path) -> None:
    """Between PIL's limit and twice it PIL only warns, then decodes; here it is refused."""
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 100  # just over the limit, under twice it
    (tmp_path / "huge.png").write_bytes(bomb_png(side))
    with pytest.raises(DataError, match=r"huge\.png.*decompression bomb"):
        read_imagefolder(tmp_path, "test", False)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_image_names_the_file(fmt: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    content = _saved(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), fmt)
    (tmp_path / f"cut.{fmt.lower()}").write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=rf"cut\.{fmt.lower()}"):
        load_dataset(DataConfig(name="imagefolder", root=tmp_path, image_size=16), 0)


@pytest.mark.parametrize(
    "content", [b"", b"plain text with an image suffix", b"\x89PNG\r\n\x1a\n" + bytes(40)]
)
def test_non_image_with_an_image_suffix_names_the_file(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(content)
    with pytest.raises(DataError, match=r"fake\.png"):
        read_imagefolder(tmp_path, "test", False)


def test_symlink_loops_are_skipped_not_followed(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "ok.png").write_bytes(MODES["L"][0]())
    os.symlink(tmp_path / "cls" / "self.png", tmp_path / "cls" / "self.png")  # ELOOP
    os.symlink(tmp_path / "loop", tmp_path / "loop")  # a class folder that is a loop
    os.symlink(tmp_path, tmp_path / "cls" / "up.png")  # a "picture" that is the root folder
    raw = read_imagefolder(tmp_path, "test", False)
    assert raw.class_names == ["cls"] and len(raw.images) == 1


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("no pictures here")
    (tmp_path / "readme.md").write_text("nor here")
    with pytest.raises(DataError, match=rf"no image files in {tmp_path}"):
        read_imagefolder(tmp_path, "test", False)


def test_root_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(MODES["L"][0]())
    with pytest.raises(DataError, match=r"photo\.png is a file, not a folder"):
        read_imagefolder(tmp_path / "photo.png", "test", False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_class_folder_names_it(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.png").write_bytes(MODES["L"][0]())
    locked.chmod(0)
    try:
        with pytest.raises(DataError, match=r"locked"):
            read_imagefolder(tmp_path, "test", False)
    finally:
        locked.chmod(0o755)


def test_celeba_with_a_corrupt_face_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "celeba_subset" / "img_align_celeba"
    folder.mkdir(parents=True)
    (folder / "000001.jpg").write_bytes(_saved(Image.fromarray(_stack(RAMP, RAMP, RAMP)), "JPEG"))
    (folder / "000002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match=r"000002\.jpg"):
        read_celeba(tmp_path, "test", False)


def test_image_size_that_cannot_fit_is_refused_before_allocating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine of 8 MiB: 12 photos at 256 px (9 MiB as float32) are refused, 64 px load."""
    real = os.sysconf
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2048}
    monkeypatch.setattr(os, "sysconf", lambda name: pages.get(name) or real(name))
    with pytest.raises(DataError, match=r"data\.image_size=256 for 12 images .* lower data\."):
        load_dataset(DataConfig(name="samples", image_size=256), 0)
    assert load_dataset(DataConfig(name="samples", image_size=64), 0).images.shape[-1] == 64
