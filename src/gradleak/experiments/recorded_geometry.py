"""The ``recorded`` geometry source: the real honest round of a configured federation.

For each seed it runs the ``malicious_peer`` config's federation up to ``threat.round`` with
the colluders replaced by a recorder that uploads their *honest* updates (so the round is the
attack-free one: no attack runs, it is cheap) and, from exactly what the colluders are handed,
builds the estimate :class:`~gradleak.fl.malicious.client.MaliciousClient` would plan on. The
analysis then plays the strategy against those real uploads offline. The ``calibrated`` source
measures the round's :class:`~gradleak.experiments.geometry.Shape` instead and draws synthetic
rounds with it. Ground truth (the honest
uploads) is used only to score the steering, as the simulator's scoring does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import Tensor

from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.experiments.geometry import (
    GEOMETRIES,
    GeometryRequest,
    GeometrySource,
    RoundGeometry,
)
from gradleak.experiments.threats.base import build_model_for, capabilities_of
from gradleak.experiments.threats.checks import check_malicious_threat, malicious_ids
from gradleak.experiments.threats.malicious import malicious_client
from gradleak.fl.adversaries import ByzantineContext
from gradleak.fl.build import build_federation, federation_data, federation_rules
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.malicious.client import MaliciousClient
from gradleak.fl.malicious.strategies import Estimate
from gradleak.fl.observations import RecordSpec


@dataclass
class EstimateRecorder:
    """Stands in for the colluders: uploads their honest update and keeps, for ``round_``, the
    estimate the malicious client would build and a copy of its generator."""

    omniscient: ClassVar[bool] = False

    client: MaliciousClient
    round_: int
    estimate: Estimate | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)

    def upload(self, context: ByzantineContext) -> Tensor:
        if context.round == self.round_ and self.estimate is None:
            self.generator.set_state(context.generator.get_state())
            self.estimate = self.client.estimate(context)
        return context.own_update


def check_recordable(config: ExperimentConfig) -> None:
    """One clear line for a config whose honest round cannot be recorded."""
    if config.threat.attacker != "malicious_peer":
        raise ConfigError(
            f"analyze --config needs threat.attacker=malicious_peer (got "
            f"{config.threat.attacker!r}): it reads the malicious client's estimate"
        )
    check_malicious_threat(config)


def recorded_round(config: ExperimentConfig, device: torch.device) -> RoundGeometry:
    """The honest round ``threat.round`` of ``config``'s federation, in the server's row order
    (the colluders' rows kept for their uploads: they are consecutive clients)."""
    check_recordable(config)
    threat, ids = config.threat, malicious_ids(config)
    data = federation_data(config)
    model = build_model_for(config, data, device)
    rules = federation_rules(config, model, device)
    client = malicious_client(config, model, rules)
    recorder = EstimateRecorder(client, threat.round)
    rules = replace(rules, byzantine={**rules.byzantine, **dict.fromkeys(ids, recorder)})
    record = RecordSpec.of(peers=[ids[0]])
    federation = build_federation(config, data, model, capabilities_of(config), record, rules)
    federation.run_until(threat.round)
    outcome = federation.run_round()
    layout = ParamLayout.of(outcome.parameters)
    flat = {u.client_id: layout.flatten(u.update).detach() for u in outcome.uploads}
    honest = [k for k in outcome.order if k not in ids]
    uploads = torch.stack([flat[k] for k in honest])
    insert_at = sum(k not in ids for k in outcome.order[: outcome.order.index(ids[0])])
    assert recorder.estimate is not None, "the colluders uploaded in the attacked round"
    estimate = Estimate(*(t.detach().to(uploads.dtype) for t in (
        recorder.estimate.victim, recorder.estimate.centre, recorder.estimate.spread)))  # fmt: skip
    # the uploads are what the server sees; client DP noise, if any, is already in them
    return RoundGeometry(uploads, uploads, estimate, client.dp, recorder.generator,
                         honest.index(threat.victim), insert_at)  # fmt: skip


@dataclass(frozen=True)
class RecordedGeometry(GeometrySource):
    """Real rounds: one per seed ``seed, seed + 1, ...`` of ``config`` (``seed`` overrides the
    config's own)."""

    config: ExperimentConfig
    device: str = "cpu"

    def rounds(self, num_honest: int, trials: int, seed: int) -> Iterator[RoundGeometry]:
        expected = self.config.federation.num_clients - self.config.threat.num_malicious
        if num_honest != expected:
            raise ConfigError(
                f"the config has {expected} honest clients, the analysis asks for {num_honest}"
            )
        for offset in range(trials):
            config = self.config.model_copy(update={"seed": seed + offset})
            yield recorded_round(config, torch.device(self.device))


@dataclass(frozen=True)
class CalibratedGeometry(GeometrySource):
    """Per seed of ``config``: the real honest round's :class:`Shape`, then ``draws`` synthetic
    rounds with that shape. What the geometry's few measured quantities alone predict."""

    config: ExperimentConfig
    draws: int = 50
    device: str = "cpu"

    def rounds(self, num_honest: int, trials: int, seed: int) -> Iterator[RoundGeometry]:
        recorded = RecordedGeometry(self.config, self.device)
        for offset, real in enumerate(recorded.rounds(num_honest, trials, seed)):
            yield from real.shape().synthetic().rounds(num_honest, self.draws, seed + offset)


def needs_config(request: GeometryRequest, name: str) -> ExperimentConfig:
    if request.config is None:
        raise ConfigError(f"--geometry {name} needs --config CONFIG (a malicious_peer config)")
    check_recordable(request.config)
    return request.config


@GEOMETRIES.register("recorded")
def recorded(request: GeometryRequest) -> GeometrySource:
    return RecordedGeometry(needs_config(request, "recorded"))


@GEOMETRIES.register("calibrated")
def calibrated(request: GeometryRequest) -> GeometrySource:
    return CalibratedGeometry(needs_config(request, "calibrated"))
