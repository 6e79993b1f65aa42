"""Turning a reader's raw images into the float (N, C, H, W) tensor every model expects.

Readers return data in their native form (uint8, native size); one shared path crops, resizes
and converts channels so that every data set is prepared the same way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_LUMA = torch.tensor([0.299, 0.587, 0.114])
"""ITU-R BT.601 weights, as PIL's RGB -> L conversion uses."""


def centre_square(images: torch.Tensor) -> torch.Tensor:
    """Crop (..., H, W) to its central min(H, W) square, so resizing never distorts shapes."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top : top + side, left : left + side]


PIXEL_SCALE: dict[np.dtype, float] = {
    np.dtype(np.uint8): 255.0,
    np.dtype(np.uint16): 65535.0,
    np.dtype(np.float32): 1.0,
    np.dtype(np.float64): 1.0,
}
"""What full intensity is in each pixel dtype a reader may hand over: 8-bit files, 16-bit files
(``pixels``: 16-bit PNGs and TIFFs) and floating-point images already in [0, 1]."""


def _scale(dtype: np.dtype) -> float:
    if dtype not in PIXEL_SCALE:
        raise TypeError(
            f"no pixel scale for dtype {dtype}; readers must return one of {PIXEL_SCALE}"
        )
    return PIXEL_SCALE[dtype]


def to_float(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Pixels to float32 in [0, 1], scaled by their dtype; a numpy (H, W, C) image -> (C, H, W).

    The scale comes from the dtype, never from the image's own values, so a dark 16-bit image
    stays dark and every file in a folder shares one scale.
    """
    if isinstance(images, np.ndarray):
        scale = _scale(images.dtype)
        pixels = torch.from_numpy(np.array(images, dtype=np.float32))  # a writable copy
        return pixels.permute(2, 0, 1) / scale
    if images.dtype != torch.uint8:
        raise TypeError(f"a batch tensor of raw images must be uint8, got {images.dtype}")
    return images.to(torch.float32) / 255.0


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop (N, C, H, W) to a square and resize it to ``size`` with antialiasing."""
    images = centre_square(images)
    if images.shape[-1] != size:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return images.clamp(0.0, 1.0)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Gray -> RGB by repetition, RGB -> gray by luma; None keeps the data set's own."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and images.shape[1] == 3:
        weights = _LUMA.to(images.device, images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]} channels to {channels}")


def prepare(
    images: torch.Tensor | list[np.ndarray], size: int, channels: int | None
) -> torch.Tensor:
    """Raw images (a uint8 batch, or a list of differently sized photos of any dtype in
    ``PIXEL_SCALE``) -> float (N, C, S, S) in [0, 1]."""
    if isinstance(images, torch.Tensor):
        batch = resize_square(to_float(images), size)
    else:
        batch = torch.cat([resize_square(to_float(image).unsqueeze(0), size) for image in images])
    return convert_channels(batch, channels)
