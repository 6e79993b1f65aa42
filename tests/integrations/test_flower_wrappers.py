"""CaptureStrategy and the client mods on real Flower Message/ArrayRecord objects, without the
simulation engine: what is recorded where the wrapper sits, and what a node keeps."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, FedMedian
from flwr.supercore.run import Run

from gradleak.experiments.captures import GLOBAL, CaptureStore
from gradleak.integrations.flower import (
    CaptureStrategy,
    curious_peer_mod,
    ground_truth_mod,
    received_global_models,
    record_batch,
)

NODES = (11, 2**64 - 5, 7)  # Flower's node ids are unsigned 64-bit


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a running ServerApp sets before a strategy builds its messages (run, node, task)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


class ListGrid(Grid):
    """The least of a Grid a strategy's configure_train asks for: the node ids."""

    def set_run(self, run: Run) -> None: ...

    @property
    def run(self) -> Run:
        raise NotImplementedError

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(NODES)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        raise NotImplementedError


def _arrays(value: float) -> ArrayRecord:
    return ArrayRecord({"w": torch.full((3,), value), "b": torch.full((1,), value)})


def _round(
    strategy: CaptureStrategy | DifferentialPrivacyServerSideFixedClipping, shifts: dict[int, float]
) -> tuple[list[Message], ArrayRecord | None]:
    config = ConfigRecord({"lr": 0.1, "local-epochs": 2, "batch-size": 8})
    sent = list(strategy.configure_train(1, _arrays(0.0), config, ListGrid()))
    replies = []
    for message in sent:
        shift = shifts[message.metadata.dst_node_id]
        content = RecordDict(
            {"arrays": _arrays(shift), "metrics": MetricRecord({"num-examples": 8})}
        )
        reply = Message(content=content, reply_to=message)
        replies.append(reply)
    aggregated, _ = strategy.aggregate_train(1, replies)
    return sent, aggregated


@pytest.mark.parametrize("inner", [FedAvg, FedMedian])
def test_capture_records_what_the_server_saw_and_changes_nothing(
    tmp_path: Path, inner: type[FedAvg]
) -> None:
    shifts = {11: 1.0, NODES[1]: 2.0, 7: 6.0}
    plain = inner(min_available_nodes=3, min_train_nodes=3)
    wrapped = CaptureStrategy(
        inner(min_available_nodes=3, min_train_nodes=3), store=tmp_path / "c.sqlite"
    )
    plain_sent, expected = _round(plain, shifts)  # type: ignore[arg-type]
    sent, aggregated = _round(wrapped, shifts)
    assert sorted(m.metadata.dst_node_id for m in sent) == sorted(
        m.metadata.dst_node_id for m in plain_sent
    )
    assert dict(sent[0].content["config"]) == dict(plain_sent[0].content["config"])
    assert expected is not None and aggregated is not None
    assert np.array_equal(aggregated["w"].numpy(), expected["w"].numpy())
    assert wrapped.min_available_nodes == 3  # attributes read through to the inner strategy
    with CaptureStore.open_existing(tmp_path / "c.sqlite") as store:
        assert store.nodes(1) == sorted(NODES)
        sent_row = store.get(1, GLOBAL, "global")
        assert sent_row is not None and sent_row.config["local-epochs"] == 2
        assert sorted(sent_row.config["nodes"]) == sorted(NODES)
        for node, shift in shifts.items():
            reply = store.get(1, node, "reply")
            assert reply is not None and reply.num_examples == 8
            assert np.all(reply.arrays["w"] == shift)
        stored = store.get(1, GLOBAL, "aggregate")
        assert stored is not None and np.array_equal(stored.arrays["w"], aggregated["w"].numpy())


def test_inside_central_dp_the_capture_holds_clipped_unnoised_updates(tmp_path: Path) -> None:
    clip = 0.5
    capture = CaptureStrategy(
        FedAvg(min_available_nodes=3, min_train_nodes=3), store=tmp_path / "dp.sqlite"
    )
    dp = DifferentialPrivacyServerSideFixedClipping(
        capture, noise_multiplier=1.0, clipping_norm=clip, num_sampled_clients=3
    )
    _round(dp, {11: 1.0, NODES[1]: 2.0, 7: 6.0})
    with CaptureStore.open_existing(tmp_path / "dp.sqlite") as store:
        replies = [store.get(1, n, "reply") for n in store.nodes(1)]
        norms = [
            float(np.sqrt(sum((r.arrays[k] ** 2).sum() for k in ("w", "b")))) for r in replies if r
        ]
        aggregate = store.get(1, GLOBAL, "aggregate")
    assert len(norms) == 3 and all(n <= clip + 1e-6 for n in norms)  # clipped
    mean = np.mean([r.arrays["w"] for r in replies if r], axis=0)
    assert aggregate is not None and np.allclose(aggregate.arrays["w"], mean)  # un-noised


def _message(kind: str, round_: int, value: float) -> Message:
    content = RecordDict(
        {"arrays": _arrays(value), "config": ConfigRecord({"server-round": round_})}
    )
    return Message(content=content, dst_node_id=5, message_type=kind)


def _context() -> Context:
    return Context(run_id=1, node_id=5, node_config={}, state=RecordDict(), run_config={})


def test_curious_peer_mod_keeps_the_global_models_the_node_received() -> None:
    context = _context()
    seen: list[str] = []

    def call_next(message: Message, ctx: Context) -> Message:
        seen.append(message.metadata.message_type)
        return message

    curious_peer_mod(_message("train", 1, 1.0), context, call_next)
    curious_peer_mod(_message("evaluate", 2, 3.0), context, call_next)  # the model after round 2
    held = received_global_models(context)
    assert seen == ["train", "evaluate"]
    assert sorted(held) == [1, 3]
    assert np.all(held[1]["w"] == 1.0) and np.all(held[3]["w"] == 3.0)


def test_ground_truth_mod_keeps_the_batch_only_when_it_runs(tmp_path: Path) -> None:
    images, labels = torch.rand(2, 3, 4, 4), torch.tensor([3, 1])

    def train(message: Message, ctx: Context) -> Message:
        record_batch(images, labels)
        return message

    store = tmp_path / "truth.sqlite"
    train(_message("train", 1, 0.0), _context())  # no mod: nothing is kept anywhere
    assert not store.exists()
    ground_truth_mod(store)(_message("train", 4, 0.0), _context(), train)
    with CaptureStore.open_existing(store) as captures:
        kept = captures.truth(4, 5)
        assert captures.truth(1, 5) is None
    assert kept is not None
    assert np.array_equal(kept[0], images.numpy()) and np.array_equal(kept[1], labels.numpy())


def test_the_legacy_strategy_api_is_captured_alike(tmp_path: Path) -> None:
    """An app on Flower's older configure_fit / aggregate_fit API: the same rows, by name."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import FedAvg as LegacyFedAvg

    from gradleak.integrations.flower.legacy import LegacyCaptureStrategy

    class Proxy(ClientProxy):
        def __init__(self, node: int) -> None:
            super().__init__(str(node))
            self.node_id = node

        def get_properties(self, *a: object, **k: object) -> Any:
            raise NotImplementedError

        def get_parameters(self, *a: object, **k: object) -> Any:
            raise NotImplementedError

        def fit(self, *a: object, **k: object) -> Any:
            raise NotImplementedError

        def evaluate(self, *a: object, **k: object) -> Any:
            raise NotImplementedError

        def reconnect(self, *a: object, **k: object) -> Any:
            raise NotImplementedError

    manager = SimpleClientManager()
    for node in NODES:
        manager.register(Proxy(node))
    inner = LegacyFedAvg(
        min_fit_clients=3, min_available_clients=3, on_fit_config_fn=lambda r: {"lr": 0.1}
    )
    strategy = LegacyCaptureStrategy(inner, tmp_path / "legacy.sqlite", names=["w", "b"])
    start = ndarrays_to_parameters([np.zeros(3, np.float32), np.zeros(1, np.float32)])
    pairs = strategy.configure_fit(1, start, manager)
    results = [
        (proxy, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
            [np.full(3, i + 1.0, np.float32), np.full(1, i + 1.0, np.float32)]), 5, {}))
        for i, (proxy, _) in enumerate(pairs)
    ]  # fmt: skip
    aggregated, _ = strategy.aggregate_fit(1, results, [])
    assert aggregated is not None
    with CaptureStore.open_existing(tmp_path / "legacy.sqlite") as store:
        assert store.nodes(1) == sorted(NODES)
        sent = store.get(1, GLOBAL, "global")
        assert sent is not None and sent.config["lr"] == 0.1
        for i, (proxy, _) in enumerate(pairs):
            reply = store.get(1, proxy.node_id, "reply")
            assert reply is not None and reply.num_examples == 5
            assert np.all(reply.arrays["w"] == i + 1.0)
        kept = store.get(1, GLOBAL, "aggregate")
        assert kept is not None and np.allclose(kept.arrays["w"], 2.0)
