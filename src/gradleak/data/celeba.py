"""The CelebA aligned-and-cropped faces (``img_align_celeba``), all with label 0.

Faces are the classic worst case for privacy, so this set is the reference for how recognisable
a reconstruction is. Attribute and identity files are not read: the attacks only need images.
Where labels must carry information (the malicious client estimates a victim's update from its
own images relabelled with the victim's labels), set ``data.labels: client``: every face is then
labelled with the index of the client that holds it, as in federated face recognition where a
client is one identity (``fl.build.federation_data``).
The 178x218 photos come back at full size; ``load_dataset`` centre-crops every image to a square,
which for CelebA is the usual 178x178 crop that keeps the face, before resizing.
"""

from __future__ import annotations

from pathlib import Path

from gradleak.data.base import DATASETS, RawImages
from gradleak.data.catalog import COUNTERS
from gradleak.data.imagefolder import image_files, images_as_raw
from gradleak.errors import DataError

_FOLDERS = ("celeba_subset/img_align_celeba", "celeba/img_align_celeba")
_HOME = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def _image_paths(root: Path) -> list[Path]:
    for folder in (root / sub for sub in _FOLDERS):
        if folder.is_dir() and (paths := image_files(folder)):
            return paths
    raise DataError(
        f"CelebA not found: expected *.jpg in {root / _FOLDERS[0]} or {root / _FOLDERS[1]}; "
        f"download img_align_celeba from {_HOME} (its terms forbid automatic download) and "
        "unpack it there"
    )


@DATASETS.register("celeba")
def read_celeba(root: Path, split: str, download: bool) -> RawImages:
    """All images found (the offline copy has no train/test split); one class, "face".

    ``num_classes`` is 2 (see ``imagefolder.MIN_CLASSES``) so a classifier still has gradients.
    """
    paths = _image_paths(root)
    return images_as_raw(paths, [0] * len(paths), ["face"])


@COUNTERS.register("celeba")
def count_celeba(root: Path, split: str) -> int:
    return len(_image_paths(root))
