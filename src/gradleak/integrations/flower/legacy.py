"""``LegacyCaptureStrategy``: the same capture for apps on Flower's older strategy API
(``flwr.server.strategy``: ``configure_fit`` / ``aggregate_fit`` with ``Parameters``).

Legacy ``Parameters`` are a bare list of arrays, so the wrapper is told their names (a PyTorch
app sends ``[v.numpy() for v in net.state_dict().values()]``, so ``names=list(net.state_dict())``)
and the capture is the one :class:`~gradleak.integrations.flower.strategy.CaptureStrategy`
writes: ``gradleak attack --capture`` reads both alike. What it sees, relative to the DP
wrappers, is as described there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy as LegacyStrategy

from gradleak.experiments.captures import GLOBAL, CaptureStore


class LegacyCaptureStrategy(LegacyStrategy):
    """Wrap a legacy strategy ``inner``; record each fit round into ``store``."""

    def __init__(self, inner: LegacyStrategy, store: Path | str, names: Sequence[str]) -> None:
        self.inner = inner
        self.names = list(names)
        self.store = CaptureStore.open(store)

    def _named(self, parameters: Parameters) -> dict[str, np.ndarray]:
        arrays = parameters_to_ndarrays(parameters)
        if len(arrays) != len(self.names):
            raise ValueError(
                f"LegacyCaptureStrategy: {len(arrays)} arrays sent but {len(self.names)} names given"
            )
        return dict(zip(self.names, arrays, strict=True))

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        pairs = self.inner.configure_fit(server_round, parameters, client_manager)
        config: dict[str, Any] = dict(pairs[0][1].config) if pairs else {}
        config.setdefault("server-round", server_round)
        config["nodes"] = [proxy.node_id for proxy, _ in pairs]
        self.store.put(server_round, GLOBAL, "global", self._named(parameters), config=config)
        return pairs

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        for proxy, res in results:
            self.store.put(
                server_round, proxy.node_id, "reply", self._named(res.parameters),
                num_examples=res.num_examples,
            )  # fmt: skip
        aggregated, metrics = self.inner.aggregate_fit(server_round, results, failures)
        if aggregated is not None:
            self.store.put(server_round, GLOBAL, "aggregate", self._named(aggregated))
        return aggregated, metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return self.inner.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return self.inner.evaluate(server_round, parameters)
