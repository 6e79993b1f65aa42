"""The maliciously curious client is an ordinary, non-omniscient client: over a whole
``malicious_peer`` run it is handed its own batch, the global models and granted labels, and
never another client's upload."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from gradleak.config import load_config
from gradleak.experiments.threats.malicious import malicious_peer
from gradleak.fl.adversaries import ByzantineContext, OmniscientContext, PoisoningClient
from gradleak.fl.malicious.client import MaliciousClient
from gradleak.fl.observations import RoundOutcome
from gradleak.fl.simulation import Federation

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "malicious_client.yaml"


def tensors(value: object, seen: set[int] | None = None) -> Iterator[Tensor]:
    """Every tensor reachable from ``value`` through dataclass fields, mappings and sequences."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Tensor):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors(getattr(value, f.name), seen)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item, seen)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tensors(item, seen)


@pytest.mark.parametrize("rule", ["krum", "median"])
def test_the_malicious_client_never_receives_an_honest_upload(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    handed: list[ByzantineContext] = []
    outcomes: list[tuple[Federation, RoundOutcome]] = []
    upload, run_round = MaliciousClient.upload, Federation.run_round

    def recording_upload(self: MaliciousClient, context: ByzantineContext) -> Tensor:
        handed.append(context)
        return upload(self, context)

    def recording_round(self: Federation) -> RoundOutcome:
        outcome = run_round(self)
        outcomes.append((self, outcome))
        return outcome

    monkeypatch.setattr(MaliciousClient, "upload", recording_upload)
    monkeypatch.setattr(Federation, "run_round", recording_round)
    config = load_config(CONFIG, [f"defense.aggregator.name={rule}", "federation.rounds=2"])
    malicious_peer(config, torch.device("cpu"))

    malicious = set(
        range(
            config.threat.attacker_client,
            config.threat.attacker_client + config.threat.num_malicious,
        )
    )
    attacked = [(fed, o) for fed, o in outcomes if fed.rules.byzantine.get(0) is not None and
                isinstance(fed.rules.byzantine[0], MaliciousClient)]  # fmt: skip
    assert len(attacked) == 2 and len(handed) == 2 * len(malicious)
    honest_uploads = [
        fed.layout.flatten(u.update)
        for fed, o in attacked
        for u in o.uploads
        if u.client_id not in malicious
    ]
    honest_tensors = [t for fed, o in attacked for u in o.uploads if u.client_id not in malicious
                      for t in u.update.values()]  # fmt: skip
    assert len(honest_uploads) == 2 * (config.federation.num_clients - len(malicious))
    for context in handed:
        assert type(context) is ByzantineContext and not hasattr(context, "honest_updates")
        assert context.observation.own_images is not None
        for tensor in tensors(context):
            for honest in [*honest_uploads, *honest_tensors]:
                assert tensor.data_ptr() != honest.data_ptr() or tensor.numel() == 0
                if tensor.shape == honest.shape:
                    assert not torch.equal(tensor, honest), "an honest upload reached the attacker"
            for row in honest_uploads:
                if tensor.dim() == 2 and tensor.shape[1] == row.numel():
                    assert not (tensor == row).all(dim=1).any(), (
                        "an honest upload reached the attacker"
                    )


def test_only_declared_omniscient_adversaries_get_the_honest_uploads() -> None:
    assert MaliciousClient.omniscient is False and PoisoningClient.omniscient is True
    assert "honest_updates" not in {f.name for f in dataclasses.fields(ByzantineContext)}
    assert "honest_updates" in {f.name for f in dataclasses.fields(OmniscientContext)}
