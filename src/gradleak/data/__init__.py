"""Data sets: readers for each on-disk format, one preparation path, and client partitions.

Importing this package registers every reader in ``DATASETS`` (and its counter for
``available_datasets``); ``load_dataset`` is the one entry point the rest of gradleak uses.
"""

from __future__ import annotations

import os

import torch

from gradleak.config import DataConfig
from gradleak.data import celeba, cifar, imagefolder, mnist, samples, showcase
from gradleak.data.base import DATASETS, DatasetReader, ImageDataset, RawImages, TokenDataset
from gradleak.data.catalog import DatasetStatus, available_datasets
from gradleak.data.text_loading import is_text_dataset, load_token_dataset
from gradleak.data.transforms import prepare
from gradleak.errors import DataError

__all__ = [
    "DATASETS",
    "DatasetReader",
    "DatasetStatus",
    "ImageDataset",
    "RawImages",
    "TokenDataset",
    "available_datasets",
    "load_dataset",
]

_READER_MODULES = (celeba, cifar, imagefolder, mnist, samples, showcase)
"""Imported for their registrations."""


def _selection(count: int, cfg: DataConfig, seed: int) -> torch.Tensor:
    """Indices to keep: a seeded permutation when shuffling, then the first ``max_images``."""
    if cfg.shuffle:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(count)
    return order[: cfg.max_images] if cfg.max_images is not None else order


def _physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits(count: int, channels: int, cfg: DataConfig) -> None:
    """Refuse an image size whose prepared tensor cannot fit in memory, before allocating it.

    Without this, ``data.image_size=200000`` ends in a torch allocator traceback (or, with
    overcommit, in the kernel's OOM killer) instead of a line saying which setting to change.
    """
    needed = count * channels * cfg.image_size**2 * 4  # float32
    memory = _physical_memory()
    if memory is not None and needed > memory:
        raise DataError(
            f"data.image_size={cfg.image_size} for {count} images of {channels} channels needs "
            f"{needed / 2**30:.1f} GiB, more than this machine's {memory / 2**30:.1f} GiB; "
            "lower data.image_size or data.max_images"
        )


def load_dataset(cfg: DataConfig, seed: int) -> ImageDataset:
    """Read ``cfg.name`` from ``cfg.root`` and prepare it as float (N, C, S, S) in [0, 1]; a
    text data set comes back as token ids (a :class:`TokenDataset`, see ``data.text_loading``).

    Selection (shuffle, ``max_images``) happens before resizing so that only kept images pay
    for it. ``seed`` (the experiment's seed) drives the shuffle, so the same seed keeps the same
    images; it is required so that no caller silently shuffles with a default seed.
    """
    if is_text_dataset(cfg.name):
        return load_token_dataset(cfg, seed)
    reader = DATASETS.get(cfg.name)
    raw = reader(cfg.resolved_root(), cfg.split, cfg.download)
    keep = _selection(len(raw.labels), cfg, seed)
    if isinstance(raw.images, torch.Tensor):
        selected: torch.Tensor | list = raw.images[keep]
    else:
        selected = [raw.images[i] for i in keep.tolist()]
    native = selected.shape[1] if isinstance(selected, torch.Tensor) else 3
    _check_fits(len(keep), max(native, cfg.channels or 1), cfg)
    images = prepare(selected, cfg.image_size, cfg.channels)
    return ImageDataset(cfg.name, images, raw.labels[keep], raw.num_classes, raw.class_names)
