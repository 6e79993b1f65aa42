"""Splitting a data set over federated clients: IID, Dirichlet label skew, or label shards.

How much a client's batch leaks depends on what it holds (a client with one class is easier to
attack), so the partition is part of the threat setting and must be reproducible: every random
choice comes from one seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gradleak.config import PartitionConfig
from gradleak.errors import DataError

_DIRICHLET_ATTEMPTS = 100
"""Redraws before giving up when a Dirichlet draw leaves a client too small. Redrawing until
every client has ``min_size`` samples is the usual practice (as in NIID-Bench), and with a
fixed seed the accepted draw is still always the same one."""


def _iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(len(labels)), num_clients)


def _dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator, min_size: int
) -> list[np.ndarray]:
    """Each class is split over clients in proportions drawn from Dirichlet(alpha)."""
    parts: list[np.ndarray] = []
    for _ in range(_DIRICHLET_ATTEMPTS):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for bucket, piece in zip(buckets, np.split(members, cuts), strict=True):
                bucket.append(piece)
        parts = [np.concatenate(bucket) for bucket in buckets]
        if min(len(part) for part in parts) >= min_size:
            break
    return parts


def _shards(
    labels: np.ndarray, num_clients: int, per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """McMahan et al.'s pathological split: sort by label, cut into equal shards, deal them out.

    When every class count is a multiple of the shard size, no shard spans two classes and each
    client sees at most ``per_client`` classes.
    """
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(by_label, num_clients * per_client)
    deal = rng.permutation(len(shards)).reshape(num_clients, per_client)
    return [np.concatenate([shards[s] for s in row]) for row in deal]


def partition(
    labels: torch.Tensor, num_clients: int, cfg: PartitionConfig, seed: int, min_size: int = 1
) -> list[torch.Tensor]:
    """Disjoint index tensors (sorted, one per client) that together cover every sample.

    Raises DataError when a client would hold fewer than ``min_size`` samples.
    """
    if num_clients < 1:
        raise DataError(f"num_clients must be at least 1, got {num_clients}")
    array = labels.detach().cpu().numpy()
    rng = np.random.default_rng(seed)
    if cfg.scheme == "iid":
        parts = _iid(array, num_clients, rng)
    elif cfg.scheme == "dirichlet":
        parts = _dirichlet(array, num_clients, cfg.alpha, rng, min_size)
    else:
        parts = _shards(array, num_clients, cfg.shards_per_client, rng)
    sizes = [len(part) for part in parts]
    if min(sizes) < min_size:
        smallest = int(np.argmin(sizes))
        hint = "or a larger data.partition.alpha" if cfg.scheme == "dirichlet" else "or more images"
        raise DataError(
            f"{cfg.scheme} partition of {len(array)} samples over {num_clients} clients leaves "
            f"client {smallest} with {sizes[smallest]} samples (at least {min_size} needed); "
            f"use fewer clients {hint}"
        )
    return [torch.from_numpy(np.sort(part)).long() for part in parts]


def label_summary(
    labels: torch.Tensor, parts: Sequence[torch.Tensor], num_classes: int
) -> torch.Tensor:
    """Counts per client and class, (clients, classes): how skewed the partition really is."""
    labels = labels.cpu()
    return torch.stack([torch.bincount(labels[p.cpu()], minlength=num_classes) for p in parts])


def format_label_summary(summary: torch.Tensor, class_names: Sequence[str] | None = None) -> str:
    """A plain-text table of ``label_summary``; beyond 20 classes, a compact per-client line."""
    num_classes = summary.shape[1]
    if num_classes > 20:
        lines = ["client  samples  classes  largest class share"]
        for client, row in enumerate(summary.tolist()):
            total = sum(row)
            share = max(row) / total if total else 0.0
            present = sum(1 for count in row if count)
            lines.append(f"{client:>6}  {total:>7}  {present:>7}  {share:>19.2f}")
        return "\n".join(lines)
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    width = max(5, *(len(n) for n in names), len(str(int(summary.max()) if summary.numel() else 0)))
    header = "client  " + " ".join(f"{n[:width]:>{width}}" for n in names) + "  total"
    rows = [
        f"{client:>6}  " + " ".join(f"{c:>{width}}" for c in row) + f"  {sum(row):>5}"
        for client, row in enumerate(summary.tolist())
    ]
    return "\n".join([header, *rows])
