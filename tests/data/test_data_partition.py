from __future__ import annotations

import pytest
import torch

from gradleak.config import PartitionConfig
from gradleak.data.partition import format_label_summary, label_summary, partition
from gradleak.errors import DataError

LABELS = torch.arange(10).repeat_interleave(100)[
    torch.randperm(1000, generator=torch.Generator().manual_seed(0))
]
SCHEMES = [
    PartitionConfig(scheme="iid"),
    PartitionConfig(scheme="dirichlet", alpha=0.3),
    PartitionConfig(scheme="shards"),
]


@pytest.mark.parametrize("cfg", SCHEMES, ids=lambda c: c.scheme)
def test_disjoint_cover_deterministic(cfg: PartitionConfig) -> None:
    parts = partition(LABELS, 5, cfg, seed=3)
    assert len(parts) == 5
    joined = torch.cat(parts)
    assert torch.equal(joined.sort().values, torch.arange(1000))
    again = partition(LABELS, 5, cfg, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition(LABELS, 5, cfg, seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(parts, other, strict=True))


def _skew(cfg: PartitionConfig) -> float:
    """Mean share of a client's largest class: 0.1 for a perfectly balanced client."""
    summary = label_summary(LABELS, partition(LABELS, 10, cfg, seed=0), 10).float()
    return float((summary.max(dim=1).values / summary.sum(dim=1)).mean())


def test_dirichlet_is_more_skewed_than_iid() -> None:
    assert _skew(PartitionConfig(scheme="dirichlet", alpha=0.1)) > _skew(PartitionConfig()) + 0.2


def test_shards_limit_classes_per_client() -> None:
    cfg = PartitionConfig(scheme="shards", shards_per_client=2)
    summary = label_summary(LABELS, partition(LABELS, 5, cfg, seed=0), 10)
    assert ((summary > 0).sum(dim=1) <= 2).all() and summary.sum() == 1000


def test_too_many_clients() -> None:
    with pytest.raises(DataError, match="fewer clients"):
        partition(LABELS[:20], 30, PartitionConfig(), seed=0)
    with pytest.raises(DataError, match=r"larger data\.partition\.alpha"):
        partition(
            LABELS[:40], 20, PartitionConfig(scheme="dirichlet", alpha=0.01), seed=0, min_size=2
        )


def test_format_label_summary() -> None:
    parts = partition(LABELS, 3, PartitionConfig(), seed=0)
    table = format_label_summary(label_summary(LABELS, parts, 10), [f"c{i}" for i in range(10)])
    lines = table.splitlines()
    assert len(lines) == 4 and "c9" in lines[0] and lines[1].split()[-1] == "334"
    wide = format_label_summary(label_summary(LABELS, parts, 100))
    assert "largest class share" in wide
