"""Was the attacker noticed, and did it hurt the model? (scoring side, never seen by the attack)

Per attacked round: whether the rule selected the malicious uploads or kept their values inside
its trimmed window (what a server inspecting the rule's decisions would see), and how much of
the victim's update reached the aggregate. Per run: the global model's test accuracy with the
attacker and in the same federation without it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradleak.config import ExperimentConfig
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.errors import DataError
from gradleak.fl.aggregators import AggregationResult
from gradleak.fl.simulation import Federation

TEST_IMAGES = 500


def round_stealth(
    result: AggregationResult, order: list[int], malicious: list[int], victim: int
) -> dict[str, Any]:
    """Stealth and exposure of one round; ``order`` maps rows of the stacked uploads to clients."""
    rows = {client: row for row, client in enumerate(order)}
    bad = [rows[k] for k in malicious if k in rows]
    report: dict[str, Any] = {
        "victim_contribution": float(result.contributions[rows[victim]]),
        "malicious_contribution": float(result.contributions[bad].sum()),
    }
    if result.selected is not None:
        chosen = set(result.selected.tolist())
        report["malicious_selected"] = sum(r in chosen for r in bad) / len(bad)
        report["victim_selected"] = rows[victim] in chosen
    if result.sources is not None:
        report["malicious_in_window"] = float(
            torch.stack([(result.sources == r).any(dim=0) for r in bad]).float().mean()
        )
        report["victim_source_fraction"] = float((result.sources == rows[victim]).any(dim=0).float().mean())
    return report


def aggregation_of(federation: Federation, uploads: dict[int, Tensor]) -> tuple[AggregationResult, list[int]]:
    """Re-run the server's rule on one round's uploads (it is deterministic) for its decisions."""
    order = sorted(uploads)
    stacked = torch.stack([uploads[k] for k in order])
    counts = torch.tensor([float(len(federation.parts[k])) for k in order], device=stacked.device)
    weights = counts if federation.rules.weighted else None
    return federation.rules.aggregator(stacked, weights), order


def test_data(config: ExperimentConfig, used: ImageDataset) -> ImageDataset | None:
    """Images the federation never trained on: the data set's images after the ones loaded
    for the run (same split, same order), or None when there are none. None with client labels
    (``data.labels: client``): an image no client holds has no label in that label space."""
    if config.data.shuffle or config.data.labels == "client":
        return None
    wanted = config.data.model_copy(update={"max_images": len(used) + TEST_IMAGES})
    try:
        extended = load_dataset(wanted, config.seed)
    except DataError:
        return None
    if len(extended) <= len(used):
        return None
    return extended.subset(torch.arange(len(used), len(extended)))


def accuracy_report(attacked: Federation, honest: Federation, test: ImageDataset | None) -> dict[str, Any]:
    """Test accuracy of both global models (None without test images) and their difference."""
    if test is None:
        return {"test_accuracy_attacked": None, "test_accuracy_honest": None, "test_images": 0}
    with_attacker = attacked.evaluate(test.images, test.labels)
    without = honest.evaluate(test.images, test.labels)
    return {
        "test_accuracy_attacked": with_attacker,
        "test_accuracy_honest": without,
        "accuracy_drop": without - with_attacker,
        "test_images": len(test),
    }
