"""Decoding one image file into an array at its true scale, whatever its PIL mode.

PIL's own ``convert("L")``/``convert("RGB")`` clips 16- and 32-bit pixels to 255 instead of
scaling them, so a 16-bit PNG came out 97 % white: wrong ground truth and wrong scores with no
warning. Here each mode family has one converter that keeps the pixels' own precision; the
dtype then says the scale (``transforms.PIXEL_SCALE``), so every accepted mode ends up in
[0, 1]. Image files are user input: any failure to decode one (truncated, corrupt, a
decompression bomb, a mode that cannot be converted) is a ``DataError`` naming the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from gradleak.errors import DataError

_UINT16_MAX = 65535
_T = TypeVar("_T")

Converter = Callable[[Image.Image, bool], np.ndarray]
"""(image, grey) -> array (H, W) or (H, W, C) in a dtype of ``transforms.PIXEL_SCALE``."""


def _sixteen_bit(image: Image.Image, grey: bool) -> np.ndarray:
    """I;16 in any byte order: the full 0..65535 range of a 16-bit file, kept as uint16."""
    return np.asarray(image).astype(np.uint16)


def _thirty_two_bit(image: Image.Image, grey: bool) -> np.ndarray:
    """Mode I (older PIL reads 16-bit PNGs this way; TIFFs hold int32): taken as 16-bit.

    A value outside 0..65535 has no scale that another file would share, so it is refused
    rather than guessed from the image's own maximum.
    """
    array = np.asarray(image)
    if array.size and (array.min() < 0 or array.max() > _UINT16_MAX):
        raise ValueError(
            f"32-bit integer pixels span {array.min()}..{array.max()}, outside 0..{_UINT16_MAX}; "
            "save it as an 8- or 16-bit image"
        )
    return array.astype(np.uint16)


def _float(image: Image.Image, grey: bool) -> np.ndarray:
    """Mode F: floating-point pixels must already be intensities in [0, 1]."""
    array = np.asarray(image, dtype=np.float32)
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise ValueError(
            "floating-point pixels must lie in [0, 1] (found values outside, or NaN/inf); "
            "save it as an 8- or 16-bit image"
        )
    return array


def _eight_bit(image: Image.Image, grey: bool) -> np.ndarray:
    """Every 8-bit mode (1, L, LA, P, RGB, RGBA, CMYK, YCbCr, ...): PIL's conversion is exact."""
    return np.asarray(image.convert("L" if grey else "RGB"))


CONVERTERS: dict[str, Converter] = {
    "I;16": _sixteen_bit,
    "I;16L": _sixteen_bit,
    "I;16B": _sixteen_bit,
    "I;16N": _sixteen_bit,
    "I": _thirty_two_bit,
    "F": _float,
}
"""Modes whose pixels are not 8-bit; any other mode goes through ``_eight_bit``."""


def is_grey(mode: str) -> bool:
    """Whether a PIL mode holds one intensity per pixel (alpha aside): 1, L, LA, I, I;16, F."""
    try:
        return Image.getmodebase(mode) == "L"
    except KeyError:
        return False


def _decode(image: Image.Image, grey: bool) -> np.ndarray:
    array = CONVERTERS.get(image.mode, _eight_bit)(image, grey)
    if array.ndim == 2:
        array = array[:, :, None]
    if not grey and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def open_image(path: Path, action: Callable[[Image.Image], _T]) -> _T:
    """Run ``action`` on the opened image, turning every decoding failure into a DataError.

    PIL's ``DecompressionBombWarning`` (more than ``Image.MAX_IMAGE_PIXELS`` pixels) is an error
    here: no attack needs such an image, and decoding one can take gigabytes. Decoding hostile
    bytes can raise nearly any exception type (``DecompressionBombError`` is not an
    ``OSError``; corrupt chunks give ``SyntaxError``, ``struct.error``, ``ValueError``, ...),
    so every one is reported as a broken file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return action(image)
    except (Exception, Image.DecompressionBombWarning) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise DataError(f"cannot read image {path} ({reason}); remove or replace it") from None


def image_mode(path: Path) -> str:
    """The PIL mode from the file's header alone (no pixel decoding)."""
    return open_image(path, lambda image: str(image.mode))


def read_image(path: Path, grey: bool) -> np.ndarray:
    """One image as (H, W, 1) when ``grey`` else (H, W, 3), at its own precision."""
    return open_image(path, lambda image: _decode(image, grey))
