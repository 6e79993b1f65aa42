"""``CaptureStrategy``: record what a Flower server sees, then let the real strategy run.

It wraps any Message-API strategy (FedAvg, Krum, FedMedian, Bulyan, the DP wrappers, a user's
own) by delegation and changes nothing it does: in ``configure_train`` it keeps the round's
global arrays and the train config the server sends (what the server knows of the clients'
schedule: learning rate, local epochs or steps, batch size), in ``aggregate_train`` each
reply's arrays, node id and ``num-examples`` and, once the inner strategy has aggregated them,
the result; then the inner strategy's own return values go back to Flower unchanged.

Where it sits decides what it captures, which is what that position of the server sees:

- ``CaptureStrategy(FedAvg(...))``: every client's raw update, the plain curious server.
- ``DifferentialPrivacyServerSideFixedClipping(CaptureStrategy(FedAvg(...)), ...)``: the DP
  wrapper clips each reply before it calls its inner strategy and adds noise only to the
  aggregate, so a capture *inside* it holds the clipped, un-noised updates: central DP does not
  protect a single update from the server that applies it. Outside the wrapper
  (``CaptureStrategy(DifferentialPrivacy...(FedAvg(...)))``) it captures the raw replies too;
  its ``aggregate`` rows are then the noised aggregate.
- Under SecAgg+ (``SecAggPlusWorkflow``) the server never holds an individual update: there
  is nothing per node to capture, only the aggregate, so only peer (curious-client) attacks on
  two consecutive global models apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from gradleak.experiments.captures import GLOBAL, CaptureStore
from gradleak.integrations.flower.records import (
    arrays_of,
    config_of,
    num_examples,
    only_arrays,
    only_config,
)


class CaptureStrategy(Strategy):
    """Wrap ``inner``; record each training round into the capture store at ``store``.

    Attribute reads the wrapper does not answer go to ``inner`` (``fraction_train``, ...), so
    code that inspects the strategy keeps working.
    """

    def __init__(self, inner: Strategy, store: Path | str) -> None:
        if not isinstance(inner, Strategy):
            raise TypeError(
                f"CaptureStrategy wraps a Flower Message-API Strategy, got {type(inner).__name__}"
            )
        self.inner = inner
        self.store = CaptureStore.open(store)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes the wrapper lacks; "inner" itself must exist first.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def _array_key(self) -> str:
        return str(getattr(self.inner, "arrayrecord_key", "arrays"))

    @property
    def _config_key(self) -> str:
        return str(getattr(self.inner, "configrecord_key", "config"))

    @property
    def _weight_key(self) -> str:
        return str(getattr(self.inner, "weighted_by_key", "num-examples"))

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        sent = only_config(messages[0].content, self._config_key) if messages else config
        train_config = config_of(sent)
        train_config["nodes"] = [m.metadata.dst_node_id for m in messages]
        self.store.put(server_round, GLOBAL, "global", arrays_of(arrays), config=train_config)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for reply in replies:
            if reply.has_error() or not reply.has_content():
                continue
            record = only_arrays(reply.content, self._array_key)
            if record is None:
                continue
            self.store.put(
                server_round,
                reply.metadata.src_node_id,
                "reply",
                arrays_of(record),
                num_examples=num_examples(reply, self._weight_key),
            )
        aggregated, metrics = self.inner.aggregate_train(server_round, replies)
        if aggregated is not None:
            self.store.put(server_round, GLOBAL, "aggregate", arrays_of(aggregated))
        return aggregated, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()
