"""Builders for hostile data files, written byte by byte so tests can make what libraries refuse
to write: 16-bit RGB PNGs, PNG headers declaring giant images, idx headers whose dimensions
overflow, gzip bombs and pickles that call arbitrary globals. Every file stays small."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np


def png_bytes(
    width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes]
) -> bytes:
    """A PNG from unfiltered scanlines ``rows`` (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"".join(b"\0" + row for row in rows))
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def png_from_array(pixels: np.ndarray) -> bytes:
    """A PNG of (H, W, C) uint8 or uint16 pixels, C in 1..4, at the array's own bit depth."""
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[pixels.shape[2]]
    big_endian = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = [row.tobytes() for row in big_endian]
    height, width = pixels.shape[:2]
    return png_bytes(width, height, 8 * pixels.dtype.itemsize, colour_type, rows)


def bomb_png(side: int = 1 << 15) -> bytes:
    """An 8-bit grey PNG declaring side x side pixels (a billion by default) over one scanline."""
    return png_bytes(side, side, 8, 0, [bytes(side)])


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes = b"") -> bytes:
    """An idx file (MNIST's format): big-endian magic, one uint32 per dimension, then the bytes."""
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def gzip_bomb(path: Path, head: bytes, zeros: int) -> None:
    """``head`` then ``zeros`` zero bytes, gzipped in 1 MiB pieces (a few kB on disk per 10 MB)."""
    piece = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as file:
        file.write(head)
        for start in range(0, zeros, len(piece)):
            file.write(piece[: min(len(piece), zeros - start)])
