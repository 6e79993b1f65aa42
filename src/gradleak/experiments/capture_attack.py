"""Attack a captured round offline: a real deployment's update, through the one target path.

A capture (``experiments.captures``) holds what a server saw. This turns one captured update
into the inputs of :func:`gradleak.attack` (``gradleak.api``), which builds the observation a
threat would have recorded and the target ``attacks.targets`` makes of it: no second
implementation of any attack.

- server (``node``): the round's global arrays are the weights *before*, the node's reply the
  weights *after*; the pseudo-gradient is (before − after) / lr with the schedule the server
  sent (``lr``, ``local-steps`` or ``local-epochs``, ``batch-size`` in the train config),
  the same arithmetic the simulator's clients upload. ``reply="gradient"``: the reply's arrays
  are a FedSGD gradient, taken at the round's global weights.
- peer (``peer``): node K's view, the global models before and after the round (and its own
  reply, when it was sampled): the curious-client attack on its peers' mean update.

Scoring reads the capture's ``ground_truth`` table, written only by a simulation's
``ground_truth_mod``; without it the metrics carry no truth-based score, and say so.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from torch import Tensor, nn

from gradleak.api.core import AttackResult, attack, score
from gradleak.config import AttackConfig, ModelConfig, Section, _first_error_line
from gradleak.errors import ConfigError
from gradleak.experiments import run_folder
from gradleak.experiments.captures import GLOBAL, CapturedRow, CaptureStore
from gradleak.experiments.pictures import save_reconstruction_grid
from gradleak.models import MODELS, build_model
from gradleak.yaml_io import dump_yaml

NO_TRUTH = (
    "no ground truth was captured for this round (add ground_truth_mod to a simulation's "
    "ClientApp to score): metrics hold no truth-based scores"
)


class CaptureAttackConfig(Section):
    """What ``gradleak attack --capture`` runs, written to the run's ``config.yaml``."""

    capture: str
    round: int
    node: int | None = None
    peer: int | None = None
    reply: Literal["weights", "gradient"] = "weights"
    model: str
    model_options: ModelConfig = Field(default_factory=ModelConfig)
    image_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = Field(default=10, ge=2)
    num_images: int | None = Field(default=None, ge=1)
    local_lr: float | None = Field(default=None, gt=0)
    local_steps: int | None = Field(default=None, ge=1)
    local_batch_size: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)
    attack: AttackConfig = Field(default_factory=AttackConfig)


def settings_from(raw: Mapping[str, Any]) -> CaptureAttackConfig:
    try:
        return CaptureAttackConfig.model_validate(dict(raw))
    except PydanticValidationError as exc:
        raise ConfigError(_first_error_line(exc)) from None


def load_model(spec: str, cfg: CaptureAttackConfig) -> nn.Module:
    """``spec``: a registered gradleak model (built for the image shape and class count) or
    ``module:callable``, the user's own code, imported (the current folder first on the path)
    and called without arguments; it must return an ``nn.Module``."""
    if ":" not in spec:
        if spec not in MODELS.names():
            raise ConfigError(
                f"--model {spec!r}: not a registered model ({', '.join(MODELS.names())}) "
                "nor module:callable"
            )
        options = cfg.model_options.model_copy(update={"name": spec})
        c, h, _ = cfg.image_shape
        return build_model(options, cfg.num_classes, c, h)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute.isidentifier():
        raise ConfigError(f"--model {spec!r}: give module:callable, e.g. my_app.task:Net")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--model {spec!r}: cannot load it ({exc})") from None
    if not callable(factory):
        raise ConfigError(f"--model {spec!r}: {attribute} is not callable")
    try:
        model = factory()
    except Exception as exc:  # the user's code: any failure is one line
        raise ConfigError(
            f"--model {spec!r}: calling it failed ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"--model {spec!r}: returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}


def _number(config: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass(frozen=True)
class Schedule:
    lr: float | None
    steps: int
    batch_size: int | None


def schedule_of(cfg: CaptureAttackConfig, sent: Mapping[str, Any], num_images: int) -> Schedule:
    """The clients' local schedule as the server told them (CLI values win): ``lr``, and
    ``local-steps``, else ``local-epochs`` × ceil(images / ``batch-size``)."""
    lr = cfg.local_lr or _number(sent, "lr", "local-lr", "learning-rate")
    batch = cfg.local_batch_size or _number(sent, "batch-size", "local-batch-size")
    batch_size = None if batch is None or batch >= num_images else int(batch)
    steps = cfg.local_steps or _number(sent, "local-steps")
    if steps is None:
        epochs = _number(sent, "local-epochs", "epochs") or 1
        steps = epochs * math.ceil(num_images / (batch_size or num_images))
    return Schedule(lr, int(steps), batch_size)


def _required(store: CaptureStore, round_: int, node: int, kind: str) -> CapturedRow:
    row = store.get(round_, node, kind)
    if row is not None:
        return row
    if node == GLOBAL:
        rounds = store.rounds()
        raise ConfigError(
            f"--round {round_}: no {kind} model captured (captured rounds: {rounds or 'none'})"
        )
    nodes = store.nodes(round_)
    raise ConfigError(
        f"--node {node}: no reply captured in round {round_} (nodes: {nodes or 'none'})"
    )


@dataclass(frozen=True)
class Case:
    """One captured attack: the API call's keyword arguments and the truth to score by."""

    threat: str
    weights: dict[str, Tensor]
    kwargs: dict[str, Any]
    truth: tuple[Tensor, Tensor] | None
    summary: dict[str, Any]


def _truth(store: CaptureStore, round_: int, nodes: list[int]) -> tuple[Tensor, Tensor] | None:
    parts = [store.truth(round_, n) for n in nodes]
    if not parts or any(p is None for p in parts):
        return None
    images = torch.cat([torch.from_numpy(p[0]) for p in parts if p is not None])
    labels = torch.cat([torch.from_numpy(p[1]) for p in parts if p is not None])
    return images.float(), labels.long()


def server_case(store: CaptureStore, cfg: CaptureAttackConfig, node: int) -> Case:
    start = _required(store, cfg.round, GLOBAL, "global")
    reply = _required(store, cfg.round, node, "reply")
    count = cfg.num_images or reply.num_examples
    if count is None:
        raise ConfigError(f"node {node} sent no num-examples; give --num-images")
    before = _tensors(start.arrays)
    if cfg.reply == "gradient":
        kwargs: dict[str, Any] = {"gradient": _tensors(reply.arrays)}
        summary: dict[str, Any] = {"protocol": "fedsgd"}
    else:
        schedule = schedule_of(cfg, start.config, count)
        kwargs = {
            "before": before,
            "after": _tensors(reply.arrays),
            "local_steps": schedule.steps,
            "local_lr": schedule.lr,
            "local_batch_size": schedule.batch_size,
        }
        summary = {"protocol": "fedavg", "schedule": schedule.__dict__}
    kwargs["num_images"] = count
    truth = _truth(store, cfg.round, [node])
    return Case("server", before, kwargs, truth, {**summary, "node": node, "num_images": count})


def peer_case(store: CaptureStore, cfg: CaptureAttackConfig, peer: int) -> Case:
    start = _required(store, cfg.round, GLOBAL, "global")
    after = store.get(cfg.round + 1, GLOBAL, "global") or store.get(cfg.round, GLOBAL, "aggregate")
    if after is None:
        raise ConfigError(f"--round {cfg.round}: the global model after it was not captured")
    nodes = store.nodes(cfg.round)
    own = store.get(cfg.round, peer, "reply")
    peers = [n for n in nodes if n != peer]
    if not peers:
        raise ConfigError(f"--peer {peer}: node {peer} had no peer in round {cfg.round}")
    per_peer = (own.num_examples if own is not None else None) or cfg.num_images
    count = cfg.num_images or (None if per_peer is None else per_peer * len(peers))
    if count is None:
        raise ConfigError("give --num-images: all peers' images together")
    schedule = schedule_of(cfg, start.config, count // len(peers))
    own_update = None
    if own is not None:
        if schedule.lr is None:
            raise ConfigError("give --local-lr: the captured train config holds no lr")
        own_after = _tensors(own.arrays)
        own_update = {
            k: (v - own_after[k]) / schedule.lr
            for k, v in _tensors(start.arrays).items()
            if v.is_floating_point()
        }
    kwargs = {
        "global_models": [_tensors(start.arrays), _tensors(after.arrays)],
        "own_update": own_update,
        "num_clients": len(nodes) if own is not None else len(peers),
        "local_steps": schedule.steps,
        "local_lr": schedule.lr,
        "local_batch_size": schedule.batch_size,
        "num_images": count,
    }
    summary = {"peer": peer, "peers": peers, "num_images": count, "schedule": schedule.__dict__}
    return Case("peer", _tensors(start.arrays), kwargs, _truth(store, cfg.round, peers), summary)


CASES: dict[str, Callable[[CaptureStore, CaptureAttackConfig, int], Case]] = {
    "server": server_case,
    "peer": peer_case,
}


def _load_weights(model: nn.Module, weights: Mapping[str, Tensor]) -> None:
    """The model at the round's global weights (a state dict: parameters and buffers)."""
    try:
        model.load_state_dict(dict(weights), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"--model: the captured arrays do not fit this model ({first})") from None


def save_images(images: Tensor, path: Path) -> None:
    """A row of reconstructions (no truth to set them beside)."""
    row = torch.cat(list(images.detach().cpu().clamp(0, 1)), dim=-1)
    array = (row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def write_run(
    output: Path, cfg: CaptureAttackConfig, result: AttackResult, truth: tuple[Tensor, Tensor] | None,
    metrics: dict[str, Any],
) -> None:  # fmt: skip
    """The usual run folder, ``metrics.json`` last (``experiments.run_folder``)."""
    tensors = io.BytesIO()
    torch.save(
        {
            "reconstruction": result.images.cpu(),
            "reconstruction_labels": None if result.labels is None else result.labels.cpu(),
            "truth": None if truth is None else truth[0],
            "truth_labels": None if truth is None else truth[1],
        },
        tensors,
    )
    name = "config.yaml"
    try:
        output.mkdir(parents=True, exist_ok=True)
        run_folder.write_atomic(output / name, dump_yaml(cfg.model_dump(mode="json")).encode())
        name = "reconstruction.png"
        with run_folder.replacing(output / name) as picture:
            if truth is None:
                save_images(result.images, picture)
            else:
                pairs = metrics["per_image"]
                save_reconstruction_grid(
                    truth[0][[p["index"] for p in pairs]],
                    result.images.cpu()[[p["matched_to"] for p in pairs]],
                    [p["psnr"] for p in pairs],
                    picture,
                    f"{cfg.attack.name} on a captured round: {metrics['psnr_mean']:.2f} dB mean PSNR",
                )
        name = "tensors.pt"
        run_folder.write_atomic(output / name, tensors.getvalue())
        name = "metrics.json"
        run_folder.write_atomic(
            output / name, json.dumps(metrics, indent=2, default=float).encode()
        )
    except OSError as exc:
        raise run_folder.output_failure(output, name, exc) from None


def run_capture_attack(
    cfg: CaptureAttackConfig, output: Path, overwrite: bool = False, device: str = "cpu"
) -> dict[str, Any]:
    """Attack one captured update (``cfg.node``: as the server; ``cfg.peer``: as that node)
    and write the run folder; returns its metrics."""
    if (cfg.node is None) == (cfg.peer is None):
        raise ConfigError("give exactly one of --node K (the server's attack) or --peer K")
    run_folder.prepare_run_folder(output, overwrite)
    start = time.perf_counter()
    model = load_model(cfg.model, cfg)
    with CaptureStore.open_existing(cfg.capture) as store:
        if cfg.node is not None:
            case = CASES["server"](store, cfg, cfg.node)
        else:
            assert cfg.peer is not None
            case = CASES["peer"](store, cfg, cfg.peer)
    _load_weights(model, case.weights)
    name = cfg.attack.name if case.threat == "server" else "curious_client"
    options = dict(cfg.attack.options)
    options.update(
        {k: getattr(cfg.attack, k) for k in ("lr", "tv_weight") if getattr(cfg.attack, k)}
    )
    options["restarts"], options["log_every"] = cfg.attack.restarts, cfg.attack.log_every
    result = attack(
        name, model, image_shape=cfg.image_shape, iterations=cfg.attack.iterations,
        seed=cfg.seed, device=device, options=options, **case.kwargs,
    )  # fmt: skip
    metrics: dict[str, Any] = {
        "attack": name,
        "threat": case.threat,
        "capture": {"store": str(cfg.capture), "round": cfg.round, **case.summary},
        "iterations": result.trace.iterations,
        "best_loss": result.trace.best_loss,
        "diverged": result.trace.diverged,
        "seed": cfg.seed,
        "trace": result.trace.trace,
    }
    if case.truth is None:
        metrics.update({"scored": False, "note": NO_TRUTH})
    else:
        metrics.update({"scored": True, **score(result, case.truth[0], case.truth[1])})
    metrics["wall_seconds"] = round(time.perf_counter() - start, 3)
    write_run(output, cfg, result, case.truth, metrics)
    return metrics
