"""What the user holds, as the observation a threat would have recorded, made into a target
by ``attacks.targets``: the same one path every ``gradleak run`` takes, no second one.

- A server that saw one upload: a FedSGD gradient, or a FedAvg client's weights before and
  after its local training with the schedule it trained by. The pseudo-gradient is
  (w_before − w_after) / local_lr, exactly what the simulator's clients upload
  (``fl.functional.sgd_steps``), and the replay is that schedule.
- A client that saw two consecutive global models (and, when it took part, its own upload):
  the curious client's view, whose peers' mean update ``attacks.targets`` reads off them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradleak.api.weights import Tensors, as_params, buffers_of, model_buffers
from gradleak.attacks.target import AttackTarget
from gradleak.attacks.targets import from_global_models, from_upload
from gradleak.errors import ConfigError, GradleakError
from gradleak.fl.functional import LocalSchedule, forward
from gradleak.fl.knowledge import Capabilities, KnownProtocol
from gradleak.fl.observations import ClientHistory, ClientObservation, ServerObservation
from gradleak.models import last_linear_names

FEDSGD_REPLAY = LocalSchedule(1, 1.0, None, 0.0)
"""A FedSGD gradient is the pseudo-gradient whatever the rate; replayed at rate 1, as a server
that does not know the clients' rate replays it (``attacks.targets.server_schedule``)."""


@dataclass(frozen=True)
class Batch:
    """What the attacker knows of the images behind the update."""

    num_images: int
    image_shape: tuple[int, int, int]
    labels: Tensor | None


@dataclass(frozen=True)
class Local:
    """A FedAvg client's local schedule, as the protocol tells every party."""

    steps: int = 1
    lr: float | None = None
    batch_size: int | None = None

    def schedule(self) -> LocalSchedule:
        if self.lr is None or self.lr <= 0:
            raise ConfigError(
                "local_lr: a FedAvg update needs the positive local learning rate the client "
                "trained with (the pseudo-gradient is (before - after) / local_lr)"
            )
        if self.steps < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ConfigError("local_steps and local_batch_size must be positive")
        return LocalSchedule(self.steps, float(self.lr), self.batch_size, 0.0)


def num_classes_of(model: nn.Module) -> int:
    """The output layer's width: label recovery and soft labels need it."""
    try:
        weight, _ = last_linear_names(model)
    except GradleakError as exc:
        raise ConfigError(f"model: {exc}") from None
    return int(model.get_parameter(weight).shape[0])


def check_forward(target: AttackTarget) -> None:
    """One forward pass of the dummy batch's shape, as the replay will run it (the model's
    mode, copies of the buffers, no graph), so that an ``image_shape`` the model cannot take
    is one line now rather than a shape error inside the attack."""
    shape = (target.num_images, *target.image_shape)
    buffers = {k: v.clone() for k, v in target.buffers.items()}
    target.model.train(target.update_model.train_mode)
    cuda = [target.device.index or 0] if target.device.type == "cuda" else []
    try:
        # fork_rng: a dropout layer's draws here must not shift the attack's own
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            logits = forward(
                target.model, target.parameters, buffers, torch.zeros(shape, device=target.device)
            )
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"image_shape={target.image_shape}: the model cannot take a batch of {shape} ({first})"
        ) from None
    if tuple(logits.shape) != (target.num_images, target.num_classes):
        raise ConfigError(
            f"the model maps a batch of {shape} to {tuple(logits.shape)}, not to "
            f"({target.num_images}, {target.num_classes}) class scores"
        )


def known_protocol(
    protocol: str, model: nn.Module, schedule: LocalSchedule, batch: int, clients: int = 1,
    server_lr: float = 1.0,
) -> KnownProtocol:  # fmt: skip
    return KnownProtocol(
        protocol=protocol,
        num_clients=clients,
        clients_per_round=clients,
        server_lr=server_lr,
        aggregator="mean",
        train_mode=model.training,
        clip_norm=None,
        schedule=schedule,
        batch_size=batch,
    )


def server_target(
    model: nn.Module,
    batch: Batch,
    device: torch.device,
    gradient: Tensors | None = None,
    before: Tensors | None = None,
    after: Tensors | None = None,
    local: Local | None = None,
) -> AttackTarget:
    """The curious server's target for one upload: ``gradient`` (FedSGD) or ``before`` and
    ``after`` with ``local`` (FedAvg). ``model`` is the attacker's copy; with a gradient its
    own weights are those the gradient was taken at."""
    if gradient is not None:
        params = as_params(model, list(model.parameters()), "model", device)
        buffers, updated = model_buffers(model), None
        update = as_params(model, gradient, "gradient", device)
        protocol, schedule = "fedsgd", FEDSGD_REPLAY
    else:
        if before is None or after is None:
            raise ConfigError("give gradient=..., or both before=... and after=...")
        schedule = (local or Local()).schedule()
        params = as_params(model, before, "before", device)
        final = as_params(model, after, "after", device)
        buffers = buffers_of(model, before, device) or model_buffers(model)
        updated = buffers_of(model, after, device)
        update = {k: (params[k] - final[k]) / schedule.lr for k in params}
        protocol = "fedavg"
    capabilities = Capabilities(
        knows_labels=batch.labels is not None, knows_buffers=updated is not None
    )
    observation = ServerObservation(
        round=0,
        client_id=0,
        model=model,
        parameters=params,
        buffers=buffers,
        update=update,
        protocol=known_protocol(protocol, model, schedule, batch.num_images),
        capabilities=capabilities,
        image_shape=batch.image_shape,
        num_classes=num_classes_of(model),
        labels=batch.labels,
        updated_buffers=updated,
        num_samples=batch.num_images,
    )
    target = from_upload(observation)
    check_forward(target)
    return target


def peer_target(
    model: nn.Module,
    batch: Batch,
    device: torch.device,
    global_models: tuple[Tensors, Tensors],
    own_update: Tensors | None,
    num_clients: int,
    local: Local,
    server_lr: float = 1.0,
) -> AttackTarget:
    """The curious client's target for one round: its peers' mean update read off the global
    models before and after the round (``num_clients`` took part, the attacker among them when
    it gives ``own_update``, its pseudo-gradient). ``batch.num_images`` is all its peers'
    images together, split evenly among them; given labels are in the same peer order."""
    peers = num_clients - int(own_update is not None)
    if peers < 1:
        raise ConfigError(
            f"num_clients={num_clients}: the attacker needs at least one peer in the round"
        )
    if batch.num_images % peers:
        raise ConfigError(
            f"num_images={batch.num_images} does not split evenly among {peers} peers "
            "(give all peers' images together: peers × each peer's batch)"
        )
    per_peer = batch.num_images // peers
    w_t = as_params(model, global_models[0], "global_models[0]", device)
    w_next = as_params(model, global_models[1], "global_models[1]", device)
    granted = None
    if batch.labels is not None:
        granted = {k + 1: part for k, part in enumerate(batch.labels.split(per_peer))}
    observation = ClientObservation(
        round=0,
        client_id=0,
        parameters=w_t,
        buffers=buffers_of(model, global_models[0], device) or model_buffers(model),
        own_images=None,
        own_labels=None,
        own_update=None
        if own_update is None
        else as_params(model, own_update, "own_update", device),
        own_num_samples=per_peer,
        granted_labels=granted,
        next_parameters=w_next,
        next_buffers=buffers_of(model, global_models[1], device) or model_buffers(model),
        num_participants=num_clients,
        total_samples=None,
    )
    history = ClientHistory(
        client_id=0,
        model=model,
        rounds=(observation,),
        protocol=known_protocol(
            "fedavg", model, local.schedule(), per_peer, num_clients, server_lr
        ),
        capabilities=Capabilities(knows_labels=batch.labels is not None),
        image_shape=batch.image_shape,
        num_classes=num_classes_of(model),
    )
    target = from_global_models(history, [0])
    check_forward(target)
    return target
