"""The in-memory form every data set loader returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from gradleak.registry import Registry


@dataclass(frozen=True)
class ImageDataset:
    """Images as a float tensor (N, C, H, W) in [0, 1] with integer labels (N,).

    Data sets here are small enough (the offline copies, or a slice of a full set) to keep in
    memory as one tensor, which makes batching, partitioning and scoring simple and fast.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per image")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one model input: (C, H, W)."""
        return tuple(self.images.shape[1:])

    @property
    def modality(self) -> str:
        return "image"

    def subset(self, indices: torch.Tensor | list[int]) -> ImageDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return replace(self, images=self.images[idx], labels=self.labels[idx])


@dataclass(frozen=True)
class TokenDataset(ImageDataset):
    """Sentences as token ids (N, T) with labels (N,), and the tokeniser that made them.

    It stands where an :class:`ImageDataset` stands: the federation partitions it, batches it
    and feeds each client's model whatever ``images`` holds, which here are token ids (a text
    model's ``forward`` takes ids). The tokeniser (a ``data.text_tokenizer.TextTokenizer``) is
    public, shipped with the model: threats hand it to the attacker, scoring decodes with it.
    """

    tokenizer: Any = None

    def __post_init__(self) -> None:
        if self.images.ndim != 2 or self.images.dtype != torch.long:
            raise ValueError(f"token ids must be long (N, T), got {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per sentence")

    @property
    def channels(self) -> int:
        return 1

    @property
    def image_size(self) -> int:
        return 0

    @property
    def seq_len(self) -> int:
        return int(self.images.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size) if self.tokenizer is not None else 0

    @property
    def modality(self) -> str:
        return "text"


@dataclass(frozen=True)
class RawImages:
    """What a format reader hands back before resizing: uint8 (N, C, H, W) or a list of arrays
    (H, W, C) of varying size whose dtype says their scale (``transforms.PIXEL_SCALE``: uint8,
    uint16, or float32 already in [0, 1]), plus labels and class names."""

    images: torch.Tensor | list
    labels: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)


DatasetReader = Callable[[Path, str, bool], RawImages]
"""(root, split, download) -> RawImages. Raises DataError when files are missing or corrupt."""

DATASETS: Registry[DatasetReader] = Registry("data set")
