"""Was the attacker noticed, and did it hurt the model? (scoring side, never seen by the attack)

Per attacked round: whether the rule selected the malicious uploads or kept their values inside
its trimmed window (what a server inspecting the rule's decisions would see), and how much of
the victim's update reached the aggregate, read off the rule's own decisions that the round
kept (:attr:`~gradleak.fl.observations.RoundOutcome.aggregation`). Per run: the global model's
test accuracy with the attacker and in the same federation without it (an honest baseline run).
"""

from __future__ import annotations

from typing import Any

import torch

from gradleak.config import ExperimentConfig
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.errors import DataError
from gradleak.experiments.threats.base import build_model_for
from gradleak.fl.aggregators import AggregationResult
from gradleak.fl.build import build_federation
from gradleak.fl.observations import RoundOutcome
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
        report["victim_source_fraction"] = float(
            (result.sources == rows[victim]).any(dim=0).float().mean()
        )
    return report


def outcome_stealth(outcome: RoundOutcome, malicious: list[int], victim: int) -> dict[str, Any]:
    """:func:`round_stealth` of a finished round, with its round number."""
    order = list(outcome.order)
    return {"round": outcome.round, **round_stealth(outcome.aggregation, order, malicious, victim)}


def selected_clients(outcome: RoundOutcome) -> list[int]:
    """The clients the round's rule selected (none for rules that select nobody)."""
    chosen = outcome.aggregation.selected
    return [] if chosen is None else [outcome.order[i] for i in chosen.tolist()]


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


def accuracy_report(
    attacked: Federation, honest: Federation, test: ImageDataset | None
) -> dict[str, Any]:
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


def accuracy_with_and_without(
    config: ExperimentConfig, data: ImageDataset, attacked: Federation, device: torch.device
) -> dict[str, Any]:
    """Train the same federation without the attacker and compare both models' test accuracy."""
    honest = build_federation(config, data, build_model_for(config, data, device))
    honest.run(config.federation.rounds)
    return accuracy_report(attacked, honest, test_data(config, data))
