"""A Flower client mod that makes one node gradleak's maliciously curious client.

:func:`malicious_peer_mod` wraps a node's ``ClientApp``: the node trains honestly, then the mod
swaps the arrays it sends back for the upload gradleak's
:class:`~gradleak.fl.malicious.client.MaliciousClient` plans, the very object the simulator's
``malicious_peer`` threat runs (no second implementation of the planning). The mod uses only
what that node has:

- the global arrays in the incoming train ``Message`` and its ``server-round``;
- its own training result (the reply ``call_next`` returns) and its own batch, handed over by
  the ``batch`` callable the app already trains on;
- its memory across rounds (the global models it received, the uploads it sent, its batches),
  kept in ``Context.state``, which Flower keeps on the node;
- the victim's labels, only when ``victim_labels`` is given (the ``knows_labels`` threat).

The server's rule is Flower's **own** strategy object (``Krum``, ``MultiKrum``, ``FedMedian``,
``FedTrimmedAvg``, ``Bulyan`` from ``flwr.serverapp.strategy``), mapped onto gradleak's
:class:`~gradleak.fl.malicious.strategies.RuleShape`: what every client knows of the rule.

Units: gradleak plans pseudo-gradients ``(w_t − w_local) / lr``; Flower's robust strategies
aggregate the weights themselves, with no server learning rate, so the mod sends
``w_t − lr · upload``. Krum's distances, the median and trimmed windows are unchanged by that
map (a shift and a common scale), so Flower's rule makes the decision gradleak's makes, up to
rounding: Flower's Krum takes float32 squared distances as |x|² + |y|² − 2x·y of the weights,
whose error grows with |w|², so near-ties between small updates may fall either way.
One mod is one attacker (``f = 1``); the rounds before ``first_round`` it stays honest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.fl.adversaries import ByzantineContext
from gradleak.fl.aggregators import (
    Aggregator,
    Bulyan,
    CoordinateMedian,
    Krum,
    MultiKrum,
    TrimmedMean,
)
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, Params
from gradleak.fl.malicious.client import ClientDP, MaliciousClient
from gradleak.fl.malicious.joint import SELECTION
from gradleak.fl.malicious.strategies import Plan, RuleShape, build_strategy, strategy_name
from gradleak.fl.observations import ClientRound
from gradleak.fl.simulation import derived_generator
from gradleak.registry import Registry

if TYPE_CHECKING:
    from flwr.app import Context, Message, RecordDict
    from flwr.clientapp.typing import ClientAppCallable

__all__ = ["FLOWER_RULES", "MaliciousPeerMod", "NodeMemory", "malicious_peer_mod", "rule_shape"]

BatchFn = Callable[["Message", "Context"], tuple[Tensor, Tensor]]
LabelsFn = Callable[["Message", "Context"], "Tensor | None"]
RuleMapper = Callable[[Any], tuple[str, Aggregator]]

FLOWER_RULES: Registry[RuleMapper] = Registry("Flower robust strategy")
"""Flower strategy class name -> (gradleak rule name, the equivalent gradleak aggregator)."""


@FLOWER_RULES.register("Krum")
def _krum(strategy: Any) -> tuple[str, Aggregator]:
    return "krum", Krum(num_byzantine=int(strategy.num_malicious_nodes))


@FLOWER_RULES.register("MultiKrum")
def _multikrum(strategy: Any) -> tuple[str, Aggregator]:
    return "multikrum", MultiKrum(
        num_byzantine=int(strategy.num_malicious_nodes),
        num_selected=int(strategy.num_nodes_to_select),
    )


@FLOWER_RULES.register("FedMedian")
def _median(strategy: Any) -> tuple[str, Aggregator]:
    return "median", CoordinateMedian()


@FLOWER_RULES.register("FedTrimmedAvg")
def _trimmed(strategy: Any) -> tuple[str, Aggregator]:
    return "trimmed_mean", TrimmedMean(beta=float(strategy.beta))


@FLOWER_RULES.register("Bulyan")
def _bulyan(strategy: Any) -> tuple[str, Aggregator]:
    return "bulyan", Bulyan(num_byzantine=int(strategy.num_malicious_nodes))


def flower() -> ModuleType:
    """``flwr.app``, or one clear line when Flower is not installed."""
    try:
        import flwr.app
    except ImportError:
        raise ConfigError(
            "the Flower integration needs Flower: pip install 'gradleak[flower]'"
        ) from None
    return flwr.app


def rule_shape(strategy: object, num_nodes: int, num_malicious: int = 1) -> RuleShape:
    """gradleak's picture of Flower's ``strategy`` aggregating ``num_nodes`` replies a round.

    The first class of the strategy's MRO that :data:`FLOWER_RULES` knows decides, so a user's
    subclass of ``Krum`` is still Krum; the rule is checked to run on ``num_nodes`` replies.
    """
    for cls in type(strategy).__mro__:
        if cls.__module__.startswith("flwr.") and cls.__name__ in FLOWER_RULES:
            name, aggregator = FLOWER_RULES.get(cls.__name__)(strategy)
            aggregator.validate(num_nodes)
            return RuleShape.of(name, aggregator, num_nodes, num_malicious)
    raise ConfigError(
        f"malicious_peer_mod targets Flower's {', '.join(FLOWER_RULES.names())}; got "
        f"{type(strategy).__name__} (pass the robust strategy itself, not a wrapper)"
    )


_ROUND_KEY = re.compile(r"^(?P<prefix>.+)\.r(?P<round>\d+)\.(?P<part>model|buffers|plan|seen)$")


@dataclass(frozen=True)
class NodeMemory:
    """The attacker's memory across rounds in ``Context.state`` (a ``RecordDict`` that never
    leaves the node), under keys ``{key}.r{t}.{part}``: the global model it received, its
    buffers, the uploads it sent and its own batch (with the victim's labels when granted).
    Only the last round is kept: the planning reads the round before the current one only."""

    state: RecordDict
    key: str

    def rounds(self) -> list[int]:
        found = {
            int(match["round"])
            for name in self.state.array_records
            if (match := _ROUND_KEY.match(name)) and match["prefix"] == self.key
        }
        return sorted(found)

    def load(self, client: MaliciousClient) -> None:
        """Fill ``client``'s plans, models seen and own rounds from the state."""
        for t in self.rounds():
            params = self._tensors(t, "model")
            buffers = self._tensors(t, "buffers")
            seen = self._tensors(t, "seen")
            client.models_seen[t] = params
            client.plans[t] = Plan(self._tensors(t, "plan")["uploads"])
            granted = (
                None if "victim_labels" not in seen else {client.victim: seen["victim_labels"]}
            )
            client.seen[t] = ClientRound(t, client.clients[0], params, buffers, seen["images"],
                                         seen["labels"], None, len(seen["labels"]), granted)  # fmt: skip
        dummy = self.state.array_records.get(f"{self.key}.dummy")
        if dummy is not None:
            client.dummy = dummy.to_torch_state_dict()["dummy"]

    def save(self, client: MaliciousClient, round_: int) -> None:
        """Write round ``round_`` (and the joint strategy's dummy), drop older rounds."""
        records = flower()
        seen = client.seen[round_]
        assert seen.own_images is not None and seen.own_labels is not None, "it trained"
        batch = {"images": seen.own_images, "labels": seen.own_labels}
        if seen.granted_labels is not None and client.victim in seen.granted_labels:
            batch["victim_labels"] = seen.granted_labels[client.victim]
        parts: dict[str, dict[str, Tensor]] = {
            "model": client.models_seen[round_], "buffers": dict(seen.buffers),
            "plan": {"uploads": client.plans[round_].uploads}, "seen": batch,
        }  # fmt: skip
        for part, tensors in parts.items():
            detached = {k: v.detach().cpu() for k, v in tensors.items()}
            self.state[f"{self.key}.r{round_}.{part}"] = records.ArrayRecord(detached)
        if client.dummy is not None:
            dummy = {"dummy": client.dummy.detach().cpu()}
            self.state[f"{self.key}.dummy"] = records.ArrayRecord(dummy)
        for t in self.rounds():
            if t < round_:
                for part in parts:
                    del self.state[f"{self.key}.r{t}.{part}"]

    def _tensors(self, round_: int, part: str) -> dict[str, Tensor]:
        record = self.state.array_records[f"{self.key}.r{round_}.{part}"]
        return dict(record.to_torch_state_dict())


@dataclass(frozen=True)
class MaliciousPeerMod:
    """The mod :func:`malicious_peer_mod` returns; see the module docstring for what it uses.

    Holds configuration only: everything a node learns across rounds lives in its
    ``Context.state`` (:class:`NodeMemory`), so one mod object can serve any node.
    """

    rule: RuleShape
    victim: int
    strategy: str
    strategy_options: dict[str, Any]
    model: nn.Module
    schedule: LocalSchedule
    batch: BatchFn
    victim_labels: LabelsFn | None
    first_round: int
    seed: int
    client_id: int | None
    dp: ClientDP | None
    train_mode: bool
    arrays_key: str
    config_key: str
    state_key: str
    attacker_nodes: frozenset[int] | None = None

    def __call__(self, message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        kind = message.metadata.message_type.split(".")[0]
        if kind != flower().MessageType.TRAIN or reply.has_error():
            return reply
        if self.attacker_nodes is not None and self._client_id(context) not in self.attacker_nodes:
            return reply
        t = self._server_round(message.content) - 1
        if t < self.first_round - 1:
            return reply
        received = self._arrays(message.content, "the train message")
        trained = self._arrays(reply.content, "the ClientApp's reply")
        params, buffers = self._split(received)
        layout = ParamLayout.of(params)
        before = layout.flatten(params)
        own = (before - layout.flatten(self._split(trained)[0])) / self.schedule.lr
        upload = self.upload(message, context, t, params, buffers, own)
        sent = layout.unflatten(before - self.schedule.lr * upload.to(before.dtype))
        arrays = {name: sent.get(name, value).to(value.dtype) for name, value in trained.items()}
        reply.content[self.arrays_key] = flower().ArrayRecord(arrays)
        return reply

    def upload(
        self,
        message: Message,
        context: Context,
        round_: int,
        params: Params,
        buffers: Params,
        own_update: Tensor,
    ) -> Tensor:
        """The flat upload (pseudo-gradient units) gradleak's client plans for round ``round_``."""
        client_id = self._client_id(context)
        images, labels = self.batch(message, context)
        known = None if self.victim_labels is None else self.victim_labels(message, context)
        granted = None if known is None else {self.victim: known}
        layout = ParamLayout.of(params)
        observation = ClientRound(round_, client_id, params, buffers, images, labels,
                                  layout.unflatten(own_update), len(labels), granted)  # fmt: skip
        generator = derived_generator(self.seed, "byzantine", round_, client_id)
        client = self._client(client_id)
        memory = NodeMemory(context.state, self.state_key)
        memory.load(client)
        self.model.train(self.train_mode)
        byzantine = ByzantineContext(round_, client_id, params, buffers, own_update, generator,
                                     observation)  # fmt: skip
        upload = client.upload(byzantine)
        memory.save(client, round_)
        return upload

    def _server_round(self, content: RecordDict) -> int:
        config = content.config_records.get(self.config_key)
        value = None if config is None else config.get("server-round")
        if not isinstance(value, int):
            raise ConfigError(
                f"the train message has no integer 'server-round' in ConfigRecord "
                f"{self.config_key!r}; malicious_peer_mod needs the round (Flower's strategies "
                "send it)"
            )
        return value

    def _arrays(self, content: RecordDict, what: str) -> dict[str, Tensor]:
        record = content.array_records.get(self.arrays_key)
        if record is None:
            raise ConfigError(
                f"{what} has no ArrayRecord {self.arrays_key!r}; set malicious_peer_mod's "
                "arrays_key to the key the app uses"
            )
        return dict(record.to_torch_state_dict())

    def _client(self, client_id: int) -> MaliciousClient:
        strategy = build_strategy(self.strategy, self.rule.name, self.strategy_options)
        return MaliciousClient((client_id,), self.victim, strategy, self.rule, self.model,
                               self.schedule, 1.0, self.first_round - 1, self.dp,
                               self.train_mode)  # fmt: skip

    def _client_id(self, context: Context) -> int:
        if self.client_id is not None:
            return self.client_id
        partition = context.node_config.get("partition-id")
        return int(partition) if isinstance(partition, int | float | str) else context.node_id

    def _split(self, state: dict[str, Tensor]) -> tuple[Params, Params]:
        """The model's parameters (in the model's order, as gradleak flattens them) and the
        rest of the state dict (buffers)."""
        names = [name for name, _ in self.model.named_parameters()]
        missing = [name for name in names if name not in state]
        if missing:
            raise ConfigError(
                f"the node's arrays lack the model's parameters {missing[:3]}: malicious_peer_mod "
                f"needs the model's state_dict in ArrayRecord {self.arrays_key!r}"
            )
        params = {name: state[name] for name in names}
        buffers = {name: value for name, value in state.items() if name not in params}
        return params, buffers


def malicious_peer_mod(
    rule: object,
    victim: int,
    *,
    model: nn.Module,
    batch: BatchFn,
    local_lr: float,
    num_nodes: int,
    local_steps: int = 1,
    local_batch_size: int | None = None,
    momentum: float = 0.0,
    victim_labels: LabelsFn | None = None,
    strategy: str = "auto",
    strategy_options: dict[str, Any] | None = None,
    first_round: int = 1,
    seed: int = 0,
    client_id: int | None = None,
    dp: ClientDP | None = None,
    train_mode: bool = True,
    arrays_key: str = "arrays",
    config_key: str = "config",
    state_key: str = "gradleak.malicious",
    attacker_nodes: Collection[int] | None = None,
) -> MaliciousPeerMod:
    """A client mod that replaces this node's train reply with the maliciously curious upload.

    ``rule`` is the server's Flower strategy (Krum, MultiKrum, FedMedian, FedTrimmedAvg or
    Bulyan) and ``num_nodes`` how many replies it aggregates a round: the public protocol.
    ``victim`` is the node (partition id) whose update the upload steers the rule towards; its
    labels reach the planning only through ``victim_labels``. ``model`` is the architecture
    (copied), ``batch(message, context)`` the images in [0, 1] and labels this node trains on
    this round, and ``local_*`` / ``momentum`` the local schedule the server announces.
    ``first_round`` is a Flower server round (1-based); ``seed`` and ``client_id`` (default:
    the node's ``partition-id``, else its node id) seed the upload's jitter as gradleak's
    simulator does, so the same run gives the same upload. A ``ClientApp``'s mods run on every
    node of the app: in a simulation, name the attacker's nodes (client ids) in
    ``attacker_nodes``; the others pass through untouched.

    Example (Flower's quickstart layout; ``Net``, ``load_batch``, ``victim_batch`` are the app's)::

        mod = malicious_peer_mod(Krum(num_malicious_nodes=1), victim=1, model=Net(),
                                 batch=load_batch, victim_labels=lambda m, c: victim_batch()[1],
                                 local_lr=0.01, local_steps=3, num_nodes=8, attacker_nodes={0})
        app = ClientApp(mods=[mod])
    """
    flower()
    if local_lr <= 0 or local_steps < 1:
        raise ConfigError(
            f"malicious_peer_mod needs local_lr > 0 and local_steps >= 1, got {local_lr}, "
            f"{local_steps}"
        )
    shape = rule_shape(rule, num_nodes)
    options = dict(strategy_options or {})
    build_strategy(strategy, shape.name, options)
    planned = strategy_name(strategy, shape.name)
    aims = planned == "selection_steering" or (planned == "joint" and shape.name in SELECTION)
    if aims and victim_labels is None:
        raise ConfigError(
            f"strategy {planned} under {shape.name} estimates the victim's update from its "
            "labels: pass victim_labels"
        )
    schedule = LocalSchedule(local_steps, local_lr, local_batch_size, momentum)
    return MaliciousPeerMod(shape, victim, strategy, options, copy.deepcopy(model), schedule,
                            batch, victim_labels, first_round, seed, client_id, dp, train_mode,
                            arrays_key, config_key, state_key,
                            None if attacker_nodes is None else frozenset(attacker_nodes))  # fmt: skip
