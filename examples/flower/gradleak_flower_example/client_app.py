"""The ClientApp: a Flower quickstart client, plus gradleak's optional mods.

What an app not written for gradleak adds is only the ``mods=[...]`` list and, for scoring in a
simulation, one ``record_batch(images, labels)`` call where it trains.
"""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from gradleak.integrations.flower import curious_peer_mod, ground_truth_mod, record_batch
from gradleak.integrations.flower.mods import Mod
from gradleak_flower_example.task import Net, load_batch, train

BATCH = 4
"""Images each node trains on per round."""


def _float(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number in the train config, got {value!r}")
    return float(value)


def _int(value: object) -> int:
    return int(_float(value))


def make_client_app(truth_store: Path | str | None = None) -> ClientApp:
    """The ClientApp; with ``truth_store`` a simulation also keeps its ground truth there."""
    mods: list[Mod] = [curious_peer_mod]
    if truth_store is not None:
        mods.append(ground_truth_mod(truth_store))
    app = ClientApp(mods=mods)

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        net = Net()
        net.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        config = msg.content.config_records["config"]
        partition = _int(context.node_config["partition-id"])
        partitions = _int(context.node_config["num-partitions"])
        images, labels = load_batch(partition, partitions, _int(config["server-round"]), BATCH)
        record_batch(images, labels)  # a no-op unless ground_truth_mod runs
        loss = train(
            net, images, labels, _float(config["lr"]), _int(config["local-epochs"]),
            _int(config["batch-size"]),
        )  # fmt: skip
        metrics = MetricRecord({"train-loss": loss, "num-examples": len(labels)})
        content = RecordDict({"arrays": ArrayRecord(net.state_dict()), "metrics": metrics})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        net = Net()
        net.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        partition = _int(context.node_config["partition-id"])
        partitions = _int(context.node_config["num-partitions"])
        images, labels = load_batch(partition, partitions, 1, BATCH)
        with torch.no_grad():
            accuracy = float((net(images).argmax(1) == labels).float().mean())
        metrics = MetricRecord({"accuracy": accuracy, "num-examples": len(labels)})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


app = make_client_app()
