"""Real photos that ship inside scikit-image: the data set that needs no files and no network.

``gradleak demo`` and the tests rely on it, so only images stored in the scikit-image wheel are
used (those that need ``pooch`` to download are left out). Each image is its own class, so
label recovery can be scored; the astronaut and the cameraman give the set two faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
import torch

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS

SAMPLE_NAMES = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "clock",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)


def _load(name: str) -> np.ndarray:
    """One bundled photo (H, W, 3) in its own dtype; gray photos are repeated over three channels.

    The dtype is kept (not cast to uint8) so that ``prepare`` scales it by what the dtype
    means; a cast would wrap or clip any photo a future scikit-image ships at 16 bits.
    """
    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]


@DATASETS.register("samples")
def read_samples(root: Path, split: str, download: bool) -> RawImages:
    """The bundled photos, label = position in ``SAMPLE_NAMES``; root and split do not apply."""
    images = [_load(name) for name in SAMPLE_NAMES]
    labels = torch.arange(len(SAMPLE_NAMES))
    return RawImages(images, labels, len(SAMPLE_NAMES), list(SAMPLE_NAMES))


@COUNTERS.register("samples")
def count_samples(root: Path, split: str) -> int:
    return len(SAMPLE_NAMES)
