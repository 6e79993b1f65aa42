"""The reconstruction picture: ground truth above, matched reconstruction below."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch import Tensor


def _to_hwc(image: Tensor) -> np.ndarray:
    array = image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def save_reconstruction_grid(
    truth: Tensor,
    recon: Tensor,
    psnr: list[float],
    path: Path,
    title: str = "",
    max_columns: int = 16,
) -> None:
    """Pairs of rows, ground truth over reconstruction, PSNR under each reconstruction.

    ``recon[i]`` must already be the reconstruction matched to ``truth[i]``.
    """
    count = truth.shape[0]
    columns = min(count, max_columns)
    row_pairs = math.ceil(count / columns)
    fig, axes = plt.subplots(
        2 * row_pairs,
        columns,
        figsize=(max(1.3 * columns + 0.4, 3.4), 2.9 * row_pairs + 0.4),
        squeeze=False,
    )
    gray = truth.shape[1] == 1
    for ax in axes.flat:
        ax.axis("off")
    for i in range(count):
        r, c = 2 * (i // columns), i % columns
        axes[r][c].imshow(_to_hwc(truth[i]), cmap="gray" if gray else None, vmin=0, vmax=1)
        axes[r + 1][c].imshow(_to_hwc(recon[i]), cmap="gray" if gray else None, vmin=0, vmax=1)
        axes[r + 1][c].set_title(f"{psnr[i]:.1f} dB", fontsize=8, y=-0.22)
    axes[0][0].text(
        -0.15,
        0.5,
        "truth",
        rotation=90,
        va="center",
        ha="right",
        transform=axes[0][0].transAxes,
        fontsize=8,
    )
    axes[1][0].text(
        -0.15,
        0.5,
        "recon",
        rotation=90,
        va="center",
        ha="right",
        transform=axes[1][0].transAxes,
        fontsize=8,
    )
    if title:
        fig.suptitle(title, fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
