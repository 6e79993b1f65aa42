"""``malicious_peer_mod`` against Flower's own robust strategies.

Flower's real strategy objects aggregate real ``Message`` replies built as a ``ClientApp``
builds them (``ArrayRecord`` of the state dict, ``num-examples``); the Ray simulation engine
is not used, since the rule's decision and the mod's upload do not depend on the transport and
Ray would take minutes on the test machines' two cores.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from gradleak.config import DataConfig, ModelConfig, load_config
from gradleak.data import load_dataset
from gradleak.errors import ConfigError
from gradleak.experiments.threats import malicious as threat
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, local_update
from gradleak.fl.malicious.client import MaliciousClient
from gradleak.fl.simulation import Federation
from gradleak.models import build_model

flwr_app = pytest.importorskip("flwr.app")
flwr_strategy = pytest.importorskip("flwr.serverapp.strategy")
flwr_clientapp = pytest.importorskip("flwr.clientapp")

from gradleak.integrations.flower.malicious import flower, malicious_peer_mod  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "malicious_client.yaml"
NUM_NODES, ATTACKER, VICTIM, ROUNDS = 8, 0, 1, 5
torch.set_num_threads(1)

Batches = Callable[[int, int], tuple[Tensor, Tensor]]
"""(round, partition id) -> that node's batch of the round."""


@pytest.fixture(autouse=True)
def _server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Flower's ServerApp runtime sets before a strategy builds Messages (restored after)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in {"_task_id": 1, "_run_id": 1, "_node_id": 1}.items():
        monkeypatch.setattr(TaskIdentity, name, value)


def server_round(message: Any) -> int:
    return int(message.content["config"]["server-round"])


def honest_train(model: nn.Module, schedule: LocalSchedule, batches: Batches) -> Any:
    """A ClientApp's train function: local SGD from the received arrays on the node's batch."""

    def train(message: Any, context: Any) -> Any:
        state = message.content["arrays"].to_torch_state_dict()
        params = {name: state[name] for name, _ in model.named_parameters()}
        buffers = {name: value for name, value in state.items() if name not in params}
        images, labels = batches(
            server_round(message) - 1, int(context.node_config["partition-id"])
        )
        update, new_buffers = local_update(model, params, buffers, images, labels, schedule)
        trained = {**state, **new_buffers}
        trained.update({k: params[k] - schedule.lr * update[k] for k in params})
        content = flwr_app.RecordDict(
            {
                "arrays": flwr_app.ArrayRecord(trained),
                "metrics": flwr_app.MetricRecord({"num-examples": len(labels)}),
            }
        )
        return flwr_app.Message(content, reply_to=message)

    return train


def client_app(train: Any, mods: list[Any]) -> Any:
    """A ClientApp as a Flower user writes it: ``train`` (and a trivial evaluate) behind the
    app's mods."""
    app = flwr_clientapp.ClientApp(mods=mods)
    app.train()(train)

    @app.evaluate()
    def evaluate(message: Any, context: Any) -> Any:
        metrics = flwr_app.MetricRecord({"num-examples": 1, "loss": 0.0})
        return flwr_app.Message(flwr_app.RecordDict({"metrics": metrics}), reply_to=message)

    return app


def train_message(state: dict[str, Tensor], round_: int, node: int, kind: str = "train") -> Any:
    """What Flower's strategies send: the global arrays and the round, as ``configure_train``
    builds them."""
    content = flwr_app.RecordDict(
        {
            "arrays": flwr_app.ArrayRecord({n: v.clone() for n, v in state.items()}),
            "config": flwr_app.ConfigRecord({"server-round": round_ + 1}),
        }
    )
    return flwr_app.Message(content, dst_node_id=node, message_type=kind)


def flower_round(
    strategy: Any,
    apps: list[Any],
    contexts: list[Any],
    state: dict[str, Tensor],
    round_: int,
) -> tuple[dict[str, Tensor] | None, list[dict[str, Tensor]]]:
    """One train round: every node's ClientApp handles the global arrays, Flower's strategy
    aggregates the replies. Returns the new global arrays and each node's reply arrays."""
    replies = [
        app(train_message(state, round_, context.node_id), context)
        for app, context in zip(apps, contexts, strict=True)
    ]
    sent = [reply.content["arrays"].to_torch_state_dict() for reply in replies]
    arrays, _ = strategy.aggregate_train(round_ + 1, replies)
    return (None if arrays is None else arrays.to_torch_state_dict()), sent


def federation_apps(train: Any, mod: Any) -> list[Any]:
    """Node ATTACKER's app carries the mod; the others are honest."""
    return [client_app(train, [mod] if k == ATTACKER else []) for k in range(NUM_NODES)]


def node_contexts() -> list[Any]:
    return [
        flwr_app.Context(1, 100 + k, {"partition-id": k}, flwr_app.RecordDict(), {})
        for k in range(NUM_NODES)
    ]


def flat(model: nn.Module, state: dict[str, Tensor]) -> Tensor:
    return torch.cat([state[name].reshape(-1) for name, _ in model.named_parameters()])


@pytest.mark.parametrize("victim", [1, 3])
def test_krum_selects_the_victim_in_the_simulators_rounds_and_the_upload_matches(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, victim: int
) -> None:
    """Victim 1 is selected in every round, victim 3 in some only (the attacker's estimate
    drifts): the mod must follow the simulator both ways, round by round."""
    config = load_config(CONFIG, [f"federation.rounds={ROUNDS}", f"threat.victim={victim}"])
    captured: dict[str, Any] = {}
    uploads: dict[int, Tensor] = {}
    build, upload = threat.build_federation, MaliciousClient.upload

    def capture(*args: Any, **kwargs: Any) -> Federation:
        federation = build(*args, **kwargs)
        captured.setdefault("federation", federation)
        captured.setdefault("start", {k: v.clone() for k, v in federation.parameters.items()})
        return federation

    def record(self: MaliciousClient, context: Any) -> Tensor:
        out = upload(self, context)
        uploads.setdefault(context.round, out.detach().clone())
        return out

    with monkeypatch.context() as patch:
        patch.setattr(threat, "build_federation", capture)
        patch.setattr(MaliciousClient, "upload", record)
        summary = threat.malicious_peer(config, torch.device("cpu")).summary
    simulator = {entry["round"]: bool(entry["victim_selected"]) for entry in summary["stealth"]}
    federation: Federation = captured["federation"]
    assert sorted(simulator) == list(range(ROUNDS)) and any(simulator.values())

    data = threat.federation_data(config)
    model = threat.build_model_for(config, data, torch.device("cpu"))
    fed = config.federation
    schedule = LocalSchedule(fed.local_steps, fed.local_lr)

    def batches(round_: int, node: int) -> tuple[Tensor, Tensor]:
        return federation.ground_truth(round_, [node])

    mod = malicious_peer_mod(
        flwr_strategy.Krum(num_malicious_nodes=1), victim, model=model,
        batch=lambda m, c: batches(server_round(m) - 1, ATTACKER),
        victim_labels=lambda m, c: batches(server_round(m) - 1, victim)[1],
        local_lr=fed.local_lr, local_steps=fed.local_steps, num_nodes=NUM_NODES,
        seed=config.seed,
    )  # fmt: skip
    strategy = flwr_strategy.Krum(num_malicious_nodes=1)
    apps = federation_apps(honest_train(model, schedule, batches), mod)
    contexts, state = node_contexts(), dict(model.state_dict())
    assert torch.equal(
        flat(model, state), ParamLayout.of(captured["start"]).flatten(captured["start"])
    )
    flower: dict[int, bool] = {}
    for t in range(ROUNDS):
        new, sent = flower_round(strategy, apps, contexts, state, t)
        assert new is not None
        before = flat(model, state)
        mine = (before - flat(model, sent[ATTACKER])) / schedule.lr
        scale = uploads[t].abs().max().clamp_min(1.0)
        assert (mine - uploads[t]).abs().max() <= 1e-5 * scale, f"round {t}"
        chosen = min(
            range(NUM_NODES), key=lambda k: float((flat(model, sent[k]) - flat(model, new)).norm())
        )
        flower[t] = chosen == victim
        state = new
    assert flower == simulator, (flower, simulator)
    final = ParamLayout.of(federation.parameters).flatten(federation.parameters)
    assert (flat(model, state) - final).abs().max() <= 1e-5


def tiny_federation() -> tuple[nn.Module, LocalSchedule, Batches]:
    """LeNet and 8 nodes × 4 CIFAR-10 images, each node keeping its batch every round."""
    data = load_dataset(DataConfig(name="cifar10", max_images=32, image_size=32), 0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lenet_dlg", activation="sigmoid"), 10, 3, 32)
    images, labels = data.images.float().view(8, 4, 3, 32, 32), data.labels.view(8, 4)

    def batches(round_: int, node: int) -> tuple[Tensor, Tensor]:
        return images[node], labels[node]

    return model, LocalSchedule(1, 0.01), batches


RULES = {
    "multikrum": lambda: flwr_strategy.MultiKrum(num_malicious_nodes=1, num_nodes_to_select=3),
    "median": lambda: flwr_strategy.FedMedian(),
    "trimmed_mean": lambda: flwr_strategy.FedTrimmedAvg(beta=0.2),
    "bulyan": lambda: flwr_strategy.Bulyan(num_malicious_nodes=1),
}


@pytest.mark.parametrize(
    ("rule", "strategy"),
    [*[(rule, "auto") for rule in sorted(RULES)], ("median", "joint")],
)
def test_the_mod_uploads_what_each_other_rule_aggregates(
    data_root: Path, rule: str, strategy: str
) -> None:
    """Two rounds (the second plans from the first's memory in Context.state). The victim's
    labels are granted: without them a coordinate rule's best guess is the own update. The
    joint strategy also inverts round 1's aggregate from a dummy batch kept in the state."""
    model, schedule, batches = tiny_federation()
    labels = [batches(0, k)[1] for k in range(NUM_NODES)]
    train = honest_train(model, schedule, batches)
    mod = malicious_peer_mod(RULES[rule](), VICTIM, model=model, strategy=strategy,
                             batch=lambda m, c: batches(0, ATTACKER),
                             victim_labels=lambda m, c: labels[VICTIM], local_lr=schedule.lr,
                             num_nodes=NUM_NODES)  # fmt: skip
    contexts, state = node_contexts(), dict(model.state_dict())
    shapes = {name: value.shape for name, value in state.items()}
    for t in range(2):
        apps = federation_apps(train, mod)
        new, sent = flower_round(RULES[rule](), apps, contexts, state, t)
        honest = train(train_message(state, t, 100), contexts[ATTACKER])
        honest = honest.content["arrays"].to_torch_state_dict()
        assert {name: value.shape for name, value in sent[ATTACKER].items()} == shapes
        before = flat(model, state)
        mine = (before - flat(model, sent[ATTACKER])) / schedule.lr
        own = (before - flat(model, honest)) / schedule.lr
        assert (mine - own).norm() > 1e-3 * own.norm(), "the mod left the honest upload"
        assert new is not None and {name: value.shape for name, value in new.items()} == shapes
        assert torch.isfinite(flat(model, new)).all()
        state = new
    kept = [name for name in contexts[ATTACKER].state.array_records if name.endswith(".plan")]
    assert kept == ["gradleak.malicious.r1.plan"]
    dummy = "gradleak.malicious.dummy" in contexts[ATTACKER].state.array_records
    assert dummy == (strategy == "joint")


def test_the_mod_is_honest_before_first_round_and_on_evaluate(data_root: Path) -> None:
    model, schedule, batches = tiny_federation()
    train = honest_train(model, schedule, batches)
    mod = malicious_peer_mod(flwr_strategy.Krum(num_malicious_nodes=1), VICTIM, model=model,
                             batch=lambda m, c: batches(0, ATTACKER),
                             victim_labels=lambda m, c: batches(0, VICTIM)[1],
                             local_lr=schedule.lr, num_nodes=NUM_NODES, first_round=2)  # fmt: skip
    app, context = client_app(train, [mod]), node_contexts()[ATTACKER]
    state = dict(model.state_dict())

    def arrays(message: Any) -> Tensor:
        return flat(model, message.content["arrays"].to_torch_state_dict())

    honest = arrays(train(train_message(state, 0, 100), context))
    assert torch.equal(arrays(app(train_message(state, 0, 100), context)), honest)
    evaluated = app(train_message(state, 1, 100, "evaluate"), context)
    assert "loss" in evaluated.content["metrics"] and not context.state.array_records
    honest = arrays(train(train_message(state, 1, 100), context))
    assert not torch.equal(arrays(app(train_message(state, 1, 100), context)), honest)
    assert "gradleak.malicious.r1.plan" in context.state.array_records


def test_hostile_messages_are_config_errors(data_root: Path) -> None:
    model, schedule, batches = tiny_federation()
    mod = malicious_peer_mod(flwr_strategy.FedMedian(), VICTIM, model=model,
                             batch=lambda m, c: batches(0, ATTACKER), local_lr=schedule.lr,
                             num_nodes=NUM_NODES)  # fmt: skip
    context = node_contexts()[ATTACKER]
    message = train_message(dict(model.state_dict()), 0, 100)
    reply = honest_train(model, schedule, batches)(message, context)
    del message.content["config"]
    with pytest.raises(ConfigError, match="server-round"):
        mod(message, context, lambda m, c: reply)
    message = train_message(dict(model.state_dict()), 0, 100)
    del reply.content["arrays"]
    with pytest.raises(ConfigError, match="reply has no ArrayRecord 'arrays'"):
        mod(message, context, lambda m, c: reply)


def test_without_flower_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flwr.app", None)
    with pytest.raises(ConfigError, match=r"pip install 'gradleak\[flower\]'"):
        flower()


def no_batch(message: Any, context: Any) -> tuple[Tensor, Tensor]:
    raise AssertionError("a rejected mod never trains")


def no_labels(message: Any, context: Any) -> Tensor:
    raise AssertionError("a rejected mod never asks for labels")


def test_rules_it_cannot_target_are_config_errors() -> None:
    model = build_model(ModelConfig(name="lenet_dlg", activation="sigmoid"), 10, 3, 32)
    with pytest.raises(ConfigError, match="targets Flower's"):
        malicious_peer_mod(flwr_strategy.FedAvg(), 1, model=model, batch=no_batch,
                           local_lr=0.1, num_nodes=8)  # fmt: skip
    with pytest.raises(ConfigError, match="pass victim_labels"):
        malicious_peer_mod(flwr_strategy.Krum(num_malicious_nodes=1), 1, model=model,
                           batch=no_batch, local_lr=0.1, num_nodes=8)  # fmt: skip
    with pytest.raises(ConfigError, match="bulyan"):
        malicious_peer_mod(flwr_strategy.Bulyan(num_malicious_nodes=2), 1, model=model,
                           batch=no_batch, victim_labels=no_labels, local_lr=0.1,
                           num_nodes=8)  # fmt: skip


@pytest.mark.slow
def test_the_mod_in_flowers_simulation_engine(data_root: Path) -> None:
    """The real engine (Ray actors, Flower's node state between rounds) selects the same nodes
    as driving the same ClientApps in-process, as the other tests do (3 rounds: the third
    plans from memory of the second, which the engine must have kept)."""
    ray_cloudpickle = pytest.importorskip("ray.cloudpickle")
    simulation = pytest.importorskip("flwr.simulation")
    serverapp = pytest.importorskip("flwr.serverapp")
    model, schedule, batches = tiny_federation()
    mod = malicious_peer_mod(flwr_strategy.Krum(num_malicious_nodes=1), VICTIM, model=model,
                             batch=lambda m, c: batches(0, ATTACKER),
                             victim_labels=lambda m, c: batches(0, VICTIM)[1],
                             local_lr=schedule.lr, num_nodes=NUM_NODES,
                             attacker_nodes={ATTACKER})  # fmt: skip

    def remembering(message: Any, context: Any, call_next: Any) -> Any:
        """Reports how much the node held in Context.state before the mod ran."""
        remembered = len(context.state.array_records)
        reply = call_next(message, context)
        reply.content["metrics"]["kept"] = remembered
        return reply

    def train(message: Any, context: Any) -> Any:
        torch.set_num_threads(1)
        reply = honest_train(model, schedule, batches)(message, context)
        reply.content["metrics"]["partition"] = int(context.node_config["partition-id"])
        reply.content["metrics"]["kept"] = 0
        return reply

    # one ClientApp for every node, as in the engine; the mod acts on the attacker's node only
    apps = [client_app(train, [remembering, mod]) for _ in range(NUM_NODES)]
    contexts = node_contexts()
    state, expected = dict(model.state_dict()), []
    for t in range(3):
        new, sent = flower_round(
            flwr_strategy.Krum(num_malicious_nodes=1), apps, contexts, state, t
        )
        assert new is not None
        expected.append(
            float(
                min(
                    range(NUM_NODES),
                    key=lambda k: float((flat(model, sent[k]) - flat(model, new)).norm()),
                )
            )
        )
        state = new
    selected: list[float] = []

    class Recording(flwr_strategy.Krum):  # type: ignore[misc]
        """Krum on the replies in node order, as the in-process run hands them over: Flower's
        Krum computes float32 distances as |x|² + |y|² − 2x·y on the weights, whose rounding
        can depend on the row order, and the engine's reply order varies from run to run.
        Checks that every node replied and that the attacker's Context.state survived."""

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            ordered = sorted(
                replies, key=lambda reply: float(reply.content["metrics"]["partition"])
            )
            assert len(ordered) == NUM_NODES
            kept = [float(reply.content["metrics"]["kept"]) for reply in ordered]
            assert kept[ATTACKER] == (0.0 if server_round == 1 else 4.0), "node state kept"
            assert not any(kept[k] for k in range(NUM_NODES) if k != ATTACKER), "honest nodes"
            arrays, metrics = super().aggregate_train(server_round, ordered)
            selected.append(float(metrics["partition"]))
            return arrays, metrics

    server = serverapp.ServerApp()

    @server.main()
    def main(grid: Any, context: Any) -> None:
        # all 8 nodes every round: with Flower's default minimum of 2, the first round samples
        # whichever nodes have connected yet, and Krum over fewer replies picks differently
        nodes = {"min_train_nodes": NUM_NODES, "min_available_nodes": NUM_NODES}
        Recording(num_malicious_nodes=1, fraction_evaluate=0.0, **nodes).start(
            grid=grid, initial_arrays=flwr_app.ArrayRecord(model.state_dict()), num_rounds=3
        )

    client = client_app(train, [remembering, mod])
    ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors lack tests/
    try:
        simulation.run_simulation(
            server_app=server, client_app=client, num_supernodes=NUM_NODES,
            backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}},
        )  # fmt: skip
    finally:
        ray_cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert selected == expected
