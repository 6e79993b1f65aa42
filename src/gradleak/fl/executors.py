"""Client executors: how the sampled clients' local training of one round is run.

All executors compute the same maths and differ in speed: in float64 they agree over several
rounds to ~1e-13, and in float32 one round agrees to within rounding (tests check both). They
sum in different orders, so their float32 last bits differ, and a small BatchNorm model can
amplify that over rounds as it amplifies any one-ulp change of its weights. ``loop`` runs
clients one after another through :func:`~gradleak.fl.functional.local_update`, the reference.
``vmap`` stacks the clients and runs their local steps as one batched computation with
``torch.func`` (``chunk`` clients at a time): on a GPU that is where the speed is, while on a
CPU batched convolutions lower to grouped convolutions, which are slower than a plain loop.
``auto`` therefore picks ``vmap`` on CUDA and ``loop`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.func import vmap

from gradleak.errors import ConfigError
from gradleak.fl.functional import LocalSchedule, Params, func_gradient, local_update, sgd_steps
from gradleak.registry import Registry


@dataclass(frozen=True)
class ClientJob:
    """One client's local training in one round: its batch, the buffers it starts from, and
    its own random generator (DP-SGD noise)."""

    images: Tensor
    labels: Tensor
    buffers: Params
    generator: torch.Generator


class LocalTrainer(Protocol):
    """One client's local training from the global ``params``: (pseudo-gradient, new buffers)."""

    def __call__(
        self, model: nn.Module, params: Params, job: ClientJob, schedule: LocalSchedule
    ) -> tuple[Params, Params]: ...


def plain_training(
    model: nn.Module, params: Params, job: ClientJob, schedule: LocalSchedule
) -> tuple[Params, Params]:
    """Local SGD as the protocol prescribes (no randomness of its own)."""
    return local_update(model, params, job.buffers, job.images, job.labels, schedule)


Executor = Callable[
    [nn.Module, Params, Sequence[ClientJob], LocalSchedule], list[tuple[Params, Params]]
]


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor is built from: the device, the vmap chunk, and the local trainer."""

    device: torch.device
    chunk: int | None = None
    trainer: LocalTrainer = plain_training


EXECUTORS: Registry[Callable[[ExecutorSettings], Executor]] = Registry("client executor")


@dataclass(frozen=True)
class LoopExecutor:
    """Clients one at a time: the reference, and the only executor for custom trainers."""

    trainer: LocalTrainer

    def __call__(
        self, model: nn.Module, params: Params, jobs: Sequence[ClientJob], schedule: LocalSchedule
    ) -> list[tuple[Params, Params]]:
        return [self.trainer(model, params, job, schedule) for job in jobs]


@dataclass(frozen=True)
class VmapExecutor:
    """All clients of a round as one vectorised computation (``chunk`` clients at a time)."""

    chunk: int | None = None

    def __call__(
        self, model: nn.Module, params: Params, jobs: Sequence[ClientJob], schedule: LocalSchedule
    ) -> list[tuple[Params, Params]]:
        if not jobs:
            return []
        sizes = {job.images.shape[0] for job in jobs}
        if len(sizes) > 1:
            raise ValueError(f"vmap executor needs equal client batches, got sizes {sorted(sizes)}")
        images = torch.stack([job.images for job in jobs])
        labels = torch.stack([job.labels for job in jobs])
        buffers = {k: torch.stack([job.buffers[k] for job in jobs]) for k in jobs[0].buffers}
        with torch.no_grad():
            updates, new_buffers = vmap(
                _train_one(model, schedule), in_dims=(None, 0, 0, 0), chunk_size=self.chunk
            )(params, buffers, images, labels)
        return [
            ({k: v[i] for k, v in updates.items()}, {k: v[i] for k, v in new_buffers.items()})
            for i in range(len(jobs))
        ]


def _train_one(
    model: nn.Module, schedule: LocalSchedule
) -> Callable[[Params, Params, Tensor, Tensor], tuple[Params, Params]]:
    """One client's :func:`~gradleak.fl.functional.sgd_steps` with ``torch.func.grad``, which
    ``vmap`` batches over the clients."""
    step_grad = func_gradient(model)

    def train(
        params: Params, buffers: Params, images: Tensor, labels: Tensor
    ) -> tuple[Params, Params]:
        return sgd_steps(step_grad, params, buffers, images, labels, schedule)

    return train


@EXECUTORS.register("loop")
def loop_executor(settings: ExecutorSettings) -> Executor:
    return LoopExecutor(settings.trainer)


@EXECUTORS.register("vmap")
def vmap_executor(settings: ExecutorSettings) -> Executor:
    if settings.trainer is not plain_training:
        raise ConfigError(
            "the vmap executor runs plain local SGD only; use federation.executor=loop"
        )
    return VmapExecutor(settings.chunk)


@EXECUTORS.register("auto")
def auto_executor(settings: ExecutorSettings) -> Executor:
    """``vmap`` where it pays (CUDA, plain SGD), the loop otherwise (see the module docstring)."""
    if settings.device.type == "cuda" and settings.trainer is plain_training:
        return VmapExecutor(settings.chunk)
    return LoopExecutor(settings.trainer)
