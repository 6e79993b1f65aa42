"""``gradleak.attack`` and ``gradleak.score``: any registered attack on a user's own model and
update, from Python, through the same target path and attack classes as ``gradleak run``.

What the user hands over becomes the observation a threat would have recorded (``api.observe``)
and so a target built by ``attacks.targets``; the attack is built and checked as the runner
builds it (its options model validates ``options``, its capability check sees what was
given); the run happens on a deep copy of the model under
:func:`~gradleak.runtime.isolated_runtime`, so the caller's model, thread count and random
generators are as they were afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError as PydanticValidationError
from torch import Tensor, nn

import gradleak.attacks  # noqa: F401 - registers the built-in attacks
from gradleak.api.normalize import Stats, normalized
from gradleak.api.observe import Batch, Local, peer_target, server_target
from gradleak.api.weights import Tensors
from gradleak.attacks.base import ATTACKS, Attack, ProgressCallback, Reconstruction
from gradleak.attacks.gradient_matching import GradientMatchingAttack
from gradleak.attacks.target import AttackTarget
from gradleak.config import MAX_THREADS, AttackConfig
from gradleak.errors import ConfigError, UnknownNameError
from gradleak.metrics.lpips import LPIPS
from gradleak.metrics.scoring import score_reconstruction
from gradleak.runtime import isolated_runtime, resolve_device

SHARED_KNOBS = (
    "lr",
    "restarts",
    "tv_weight",
    "log_every",
    "compile",
    "batch_restarts",
    "stop_on_plateau",
)
"""``options`` keys that are every attack's shared settings (``attack.lr`` … in a config)
rather than the attack's own options."""


@dataclass(frozen=True)
class AttackResult:
    """The reconstructed images (B, C, H, W) in [0, 1], their labels (given or recovered),
    and the attack's whole :class:`~gradleak.attacks.base.Reconstruction` (loss trace, best
    loss, divergence). ``labels_given``: the labels are the caller's, so scoring reports no
    label accuracy for them, as a run with ``attack.labels=given`` does."""

    images: Tensor
    labels: Tensor | None
    trace: Reconstruction
    labels_given: bool = False


def build_attack(
    name: str, iterations: int, labels_given: bool, options: Mapping[str, Any]
) -> Attack:
    """The registered attack ``name`` as a config would build it: the shared knobs in
    ``options`` go to the attack section, the rest to the attack's own options model."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"options: expected a dict, got {type(options).__name__}")
    shared = {k: options[k] for k in SHARED_KNOBS if k in options}
    own = {k: v for k, v in options.items() if k not in SHARED_KNOBS}
    try:
        attack_class = ATTACKS.get(name)
    except UnknownNameError as exc:
        raise UnknownNameError(f"attack name: {exc}") from None
    section = {
        "name": name,
        "iterations": iterations,
        "labels": "given" if labels_given else "recovered",
        "options": own,
        **shared,
    }
    try:
        config = AttackConfig.model_validate(section)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        where = f"options.{key}" if str(err["loc"][0]) in SHARED_KNOBS else key
        raise ConfigError(f"{where}: {err['msg']}") from None
    return attack_class(config)


def attacker_model(
    model: nn.Module, image_shape: tuple[int, int, int], normalize: tuple[Stats, Stats] | None,
    device: torch.device,
) -> nn.Module:  # fmt: skip
    """A deep copy of the user's model on ``device``, in the user's train/eval mode, seeing
    normalised input when ``normalize`` is given: the user's model is never touched."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    own = copy.deepcopy(model).to(device).train(model.training)
    if normalize is not None:
        if len(normalize) != 2:
            raise ConfigError("normalize: give (mean, std)")
        own = normalized(own, normalize, image_shape[0], device)
    return own


def image_batch(
    num_images: int | None,
    image_shape: tuple[int, ...] | None,
    labels: Tensor | None,
    device: torch.device,
) -> Batch:
    """The dummy batch's size, shape and given labels, checked."""
    if image_shape is None or len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ConfigError(f"image_shape: give (channels, height, width), got {image_shape!r}")
    if labels is not None:
        labels = torch.as_tensor(labels).to(device=device, dtype=torch.long).flatten()
        num_images = num_images or labels.numel()
        if labels.numel() != num_images:
            raise ConfigError(f"labels: {labels.numel()} labels for num_images={num_images}")
    if num_images is None or num_images < 1:
        raise ConfigError("num_images: give how many images the update was computed on")
    c, h, w = (int(s) for s in image_shape)
    return Batch(int(num_images), (c, h, w), labels)


def check_threads(threads: object) -> int:
    """A thread count as a run's config accepts it, or one ConfigError line."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads: give a whole number from 1 to {MAX_THREADS}, got {threads!r}")
    return threads


def check_init(init: Tensor | None, target: AttackTarget, attack: Attack) -> Tensor | None:
    if init is None:
        return None
    if not isinstance(attack, GradientMatchingAttack):
        raise ConfigError(f"init: attack {attack.name} does not start from images")
    shape = (target.num_images, *target.image_shape)
    if not isinstance(init, Tensor) or tuple(init.shape) != shape:
        got = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
        raise ConfigError(f"init: expected images of shape {shape}, got {got}")
    if not bool(((init >= 0) & (init <= 1)).all()):
        raise ConfigError("init: the starting images must lie in [0, 1]")
    return init.detach().to(target.device, torch.float32).clone()


@dataclass(frozen=True)
class Updates:
    """What the caller observed: exactly one of a FedSGD gradient, a FedAvg client's weights
    before and after (with its local schedule), or a client's two global models."""

    gradient: Tensors | None
    before: Tensors | None
    after: Tensors | None
    local: Local
    global_models: tuple[Tensors, Tensors] | list[Tensors] | None
    own_update: Tensors | None
    num_clients: int | None
    server_lr: float

    def target(self, model: nn.Module, batch: Batch, device: torch.device) -> AttackTarget:
        server_side = self.before is not None or self.after is not None
        if self.global_models is None:
            if self.gradient is not None and server_side:
                raise ConfigError("give gradient=... or before=/after=..., not both")
            target = server_target(
                model, batch, device, self.gradient, self.before, self.after, self.local
            )
        else:
            if self.gradient is not None or server_side:
                raise ConfigError("give either global_models=... or a server's update, not both")
            if len(self.global_models) != 2 or self.num_clients is None:
                raise ConfigError(
                    "global_models: give [w_t, w_t1], the global models before and after the "
                    "round, and num_clients, how many clients took part"
                )
            first, second = self.global_models
            target = peer_target(
                model, batch, device, (first, second), self.own_update, self.num_clients,
                self.local, self.server_lr,
            )  # fmt: skip
        if target.labels is not None and not bool(
            ((target.labels >= 0) & (target.labels < target.num_classes)).all()
        ):
            raise ConfigError(f"labels: every label must lie in [0, {target.num_classes})")
        return target


def attack(
    name: str,
    model: nn.Module,
    gradient: Tensors | None = None,
    *,
    before: Tensors | None = None,
    after: Tensors | None = None,
    local_steps: int = 1,
    local_lr: float | None = None,
    local_batch_size: int | None = None,
    global_models: tuple[Tensors, Tensors] | list[Tensors] | None = None,
    own_update: Tensors | None = None,
    num_clients: int | None = None,
    server_lr: float = 1.0,
    labels: Tensor | None = None,
    num_images: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    normalize: tuple[Stats, Stats] | None = None,
    iterations: int = 300,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    init: Tensor | None = None,
    callback: ProgressCallback | None = None,
) -> AttackResult:
    """Run the registered attack ``name`` on one observed update of ``model``.

    The update is one of: ``gradient`` (FedSGD: one tensor per parameter, a list in
    ``model.parameters()`` order or a dict by name, taken at the model's current weights);
    ``before``/``after`` (a FedAvg client's weights before and after ``local_steps`` steps of
    SGD at ``local_lr`` on minibatches of ``local_batch_size``, None: the whole batch); or,
    for a curious client, ``global_models=[w_t, w_t1]`` with ``num_clients`` participants
    and, when the attacker took part, ``own_update`` (its pseudo-gradient (w_t − w_own) /
    local_lr). ``labels`` given are used (and grant the attack knowledge of them); None
    recovers them. ``options`` are the attack's own options (plus the shared ``lr``,
    ``restarts``, ``tv_weight``, ``log_every``, ``compile``, ``batch_restarts``,
    ``stop_on_plateau``), validated by it. ``init`` is the
    starting images (B, C, H, W) in [0, 1]; ``callback(iteration, loss)`` sees the progress.
    ``threads`` is torch's intra-op thread count for the call (None: the caller's); a run's
    result is reproduced bit for bit at the run's ``threads``, since more threads split
    reductions differently and some CPUs then differ in the last bits. Either way the caller's
    count is restored afterwards.

    Raises:
        ConfigError: one line for any input that cannot be attacked (an unknown attack or
            option, a tensor that does not fit the model, an attack that needs what was not
            given).
    """
    run_device = resolve_device(device)
    batch = image_batch(num_images, image_shape, labels, run_device)
    attack_ = build_attack(name, iterations, batch.labels is not None, options or {})
    call_threads = torch.get_num_threads() if threads is None else check_threads(threads)
    with isolated_runtime(call_threads, int(seed)):
        own = attacker_model(model, batch.image_shape, normalize, run_device)
        updates = Updates(
            gradient, before, after, Local(local_steps, local_lr, local_batch_size),
            global_models, own_update, num_clients, server_lr,
        )  # fmt: skip
        target = updates.target(own, batch, run_device)
        attack_.check(target.capabilities)
        attack_.check_model(own)
        if isinstance(attack_, GradientMatchingAttack):
            attack_.start_images = check_init(init, target, attack_)
        else:
            check_init(init, target, attack_)
        recon = attack_.reconstruct(target, callback)
    return AttackResult(recon.images.detach(), recon.labels, recon, batch.labels is not None)


def score(
    rec: AttackResult | Reconstruction | Tensor,
    true_images: Tensor,
    true_labels: Tensor | None = None,
) -> dict[str, Any]:
    """The metrics ``gradleak run`` writes for a reconstruction (PSNR, SSIM, LPIPS when its
    weights are installed, label accuracy when both label sets are known, per image after
    matching), for a result of :func:`attack` or a plain (B, C, H, W) tensor in [0, 1].
    Label accuracy is None for labels the caller gave the attack, as in a run."""
    if isinstance(rec, AttackResult):
        images, labels = rec.images, None if rec.labels_given else rec.labels
    elif isinstance(rec, Reconstruction):
        images, labels = rec.images, rec.labels
    elif isinstance(rec, Tensor):
        images, labels = rec, None
    else:
        raise ConfigError(f"score: expected an attack result or a tensor, got {type(rec).__name__}")
    if not isinstance(true_images, Tensor):
        raise ConfigError(f"score: true_images must be a tensor, got {type(true_images).__name__}")
    if images.ndim != 4 or true_images.ndim != 4 or images.shape[1:] != true_images.shape[1:]:
        raise ConfigError(
            f"score: reconstruction {tuple(images.shape)} and true images "
            f"{tuple(true_images.shape)} must both be (B, C, H, W) of the same image shape"
        )
    try:
        report = score_reconstruction(
            images.detach().cpu(),
            true_images.detach().cpu(),
            None if labels is None else labels.cpu(),
            None if true_labels is None else torch.as_tensor(true_labels).cpu(),
            LPIPS.load(),
        )
    except ValueError as exc:  # images too small for SSIM's window
        raise ConfigError(f"score: {exc}") from None
    return report.to_dict()
