"""Client mods: honest scoring of attacks on captures, and a node that keeps what it received.

A Flower client mod is ``mod(message, context, call_next) -> reply``; a ``ClientApp(mods=[...])``
runs it around every message the node handles.

- :func:`ground_truth_mod` (simulation only, off unless added): while the node trains, the app's
  :func:`record_batch` calls keep the images it trains on; when the reply is made the mod writes
  them to the capture store's ``ground_truth`` table. Only scoring ever reads that table
  (``gradleak attack --capture`` scores against it when present), so an attack on a capture is
  scored honestly and never sees it. In a real deployment a client would not hand its data to
  anyone; this exists to measure leakage in a simulation.
- :func:`curious_peer_mod`: keeps every global model the node receives in ``Context.state``, by
  round: a node sees the global model of round R when it is sampled for training in R, and the
  one after R in R's evaluate message, which fills the gaps of rounds it was not sampled in.
  :func:`received_global_models` hands them back, so the node can attack its peers with
  ``gradleak.attack("curious_client", ...)``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message
from flwr.clientapp.typing import ClientAppCallable

from gradleak.experiments.captures import CaptureStore
from gradleak.integrations.flower.records import arrays_of, only_arrays

Mod = Callable[[Message, Context, ClientAppCallable], Message]

STATE_PREFIX = "gradleak.global."
"""``Context.state`` keys of the global models :func:`curious_peer_mod` keeps."""


@dataclass
class _Recorder:
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)


_RECORDER: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "gradleak_ground_truth", default=None
)


def record_batch(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Call from a ClientApp's train function with the images (B, C, H, W) in [0, 1], as
    they are before any normalisation, and labels it trains on. A no-op unless
    :func:`ground_truth_mod` runs around this message: an app can always call it."""
    recorder = _RECORDER.get()
    if recorder is None:
        return
    recorder.images.append(images.detach().cpu().float().numpy())
    recorder.labels.append(labels.detach().cpu().long().numpy())


@contextmanager
def _recording() -> Iterator[_Recorder]:
    recorder = _Recorder()
    token = _RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        _RECORDER.reset(token)


def server_round(message: Message) -> int | None:
    """The ``server-round`` every Message-API strategy puts in its config."""
    for record in message.content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _kind(message: Message) -> str:
    return message.metadata.message_type.split(".")[0]


def ground_truth_mod(store: Path | str) -> Mod:
    """A mod that writes each training batch :func:`record_batch` saw to ``store``'s
    ground-truth table, keyed by server round and node id. Simulation only. The path is made
    absolute here, where the app is built: simulation workers may run in another folder."""
    path = Path(store).resolve()

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if _kind(message) != "train":
            return call_next(message, context)
        with _recording() as recorder:
            reply = call_next(message, context)
        round_ = server_round(message)
        if recorder.images and round_ is not None:
            with CaptureStore.open(path) as captures:
                captures.put_truth(
                    round_,
                    context.node_id,
                    np.concatenate(recorder.images),
                    np.concatenate(recorder.labels),
                )
        return reply

    return mod


def curious_peer_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Keep the global model of every round this node hears of in ``Context.state``."""
    round_ = server_round(message)
    kind = _kind(message)
    if round_ is not None and kind in ("train", "evaluate") and message.has_content():
        arrays = only_arrays(message.content, "arrays")
        if arrays is not None:
            # train in round R carries the model before R; evaluate in R the one after it
            held = round_ if kind == "train" else round_ + 1
            context.state[f"{STATE_PREFIX}{held}"] = ArrayRecord(
                {name: array for name, array in arrays.items()}
            )
    return call_next(message, context)


def received_global_models(context: Context) -> dict[int, dict[str, np.ndarray]]:
    """The global models :func:`curious_peer_mod` kept: the model *before* round R under R."""
    held: dict[int, dict[str, np.ndarray]] = {}
    for key, record in context.state.array_records.items():
        if key.startswith(STATE_PREFIX) and key[len(STATE_PREFIX) :].isdigit():
            held[int(key[len(STATE_PREFIX) :])] = arrays_of(record)
    return dict(sorted(held.items()))
