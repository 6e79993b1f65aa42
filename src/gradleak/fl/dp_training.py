"""DP-SGD local training: every local step clips each sample's gradient and adds noise.

Unlike clipping the whole update (``clip_noise`` in ``fl.defenses``), this protects single
samples inside a client (sample-level DP). Per-sample gradients come from ``torch.func``; the
clipping and noise are Opacus-equivalent (``fl.defenses_dp.clip_and_noise_per_sample``).
BatchNorm mixes samples within a batch, so it cannot be used with DP-SGD (as in Opacus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from gradleak.config import DpSgdConfig, ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.fl.defenses import ClientDefensePipeline
from gradleak.fl.defenses_dp import clip_and_noise_per_sample, dp_epsilon
from gradleak.fl.executors import ClientJob
from gradleak.fl.functional import GradFn, LocalSchedule, Params, batch_loss, sgd_steps
from gradleak.fl.protocol import local_schedule


@dataclass(frozen=True)
class DpSgdTrainer:
    """A :class:`~gradleak.fl.executors.LocalTrainer` that runs DP-SGD instead of plain SGD."""

    clip_norm: float
    noise_multiplier: float

    @classmethod
    def for_model(cls, cfg: DpSgdConfig, model: nn.Module) -> DpSgdTrainer:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ConfigError(
                "DP-SGD cannot train a model with BatchNorm; set model.norm=groupnorm"
            )
        return cls(cfg.clip_norm, cfg.noise_multiplier)

    def __call__(
        self, model: nn.Module, params: Params, job: ClientJob, schedule: LocalSchedule
    ) -> tuple[Params, Params]:
        detached = {k: v.detach() for k, v in params.items()}
        grad_fn = self.private_gradient(model, job.generator)
        return sgd_steps(grad_fn, detached, job.buffers, job.images, job.labels, schedule)

    def private_gradient(self, model: nn.Module, generator: torch.Generator) -> GradFn:
        """DP-SGD as a transform of the step's gradient (Opacus' ``DPOptimizer.pre_step``):
        per-sample gradients, each clipped, summed, noised and divided by the batch size; the
        SGD loop that consumes it is the plain one."""
        per_sample = per_sample_gradients(model)

        def grad_fn(
            p: Params, buffers: Params, images: Tensor, labels: Tensor
        ) -> tuple[Params, Params]:
            grads = per_sample(p, buffers, images, labels)
            noised = clip_and_noise_per_sample(
                grads, self.clip_norm, self.noise_multiplier, generator
            )
            return noised, buffers

        return grad_fn


def per_sample_gradients(model: nn.Module) -> Callable[[Params, Params, Tensor, Tensor], Params]:
    """``(params, buffers, images, labels) -> {name: (B, ...)}``, each sample's own gradient."""

    def sample_loss(p: Params, buffers: Params, image: Tensor, label: Tensor) -> Tensor:
        return batch_loss(model, p, buffers, image.unsqueeze(0), label.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, None, 0, 0))


def dp_sgd_epsilon(
    cfg: DpSgdConfig, schedule: LocalSchedule, batch_size: int, min_client_size: int, rounds: int
) -> float:
    """Sample-level epsilon of a client that took part in every one of ``rounds`` rounds.

    Each local step uses ``local_batch_size`` of the ``batch_size`` images drawn that round out
    of the client's data; the sampling rate of the smallest client, ``minibatch / size``, is the
    worst case. The accountant assumes Poisson sampling (as Opacus users report it).
    """
    minibatch = min(schedule.batch_size or batch_size, batch_size)
    rate = min(1.0, minibatch / min_client_size)
    steps = schedule.steps * rounds
    return dp_epsilon(cfg.noise_multiplier, rate, steps, cfg.delta)


def reported_epsilon(
    config: ExperimentConfig, pipeline: ClientDefensePipeline, min_client_size: int, rounds: int
) -> tuple[float | None, str | None]:
    """(epsilon, what it protects) after ``rounds`` rounds, or (None, None) without DP noise.

    Update-level noise (``clip_noise``) protects a client's whole data (client-level DP,
    amplified by client sampling as seen by a peer); DP-SGD protects one sample. When both are
    on, the client-level figure is reported: it is the stronger guarantee's unit.
    """
    fed = config.federation
    sample_rate = (fed.clients_per_round or fed.num_clients) / fed.num_clients
    client_level = pipeline.epsilon(sample_rate, rounds)
    if client_level is not None:
        return client_level, "client"
    dp_sgd = config.defense.dp_sgd
    if dp_sgd is None:
        return None, None
    schedule = local_schedule(config)
    return dp_sgd_epsilon(dp_sgd, schedule, fed.batch_size, min_client_size, rounds), "sample"
