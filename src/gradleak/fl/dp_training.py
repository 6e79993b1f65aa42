"""DP-SGD local training: every local step clips each sample's gradient and adds noise.

Unlike clipping the whole update (``clip_noise`` in ``fl.defenses``), this protects single
samples inside a client (sample-level DP). Per-sample gradients come from ``torch.func``; the
clipping and noise are Opacus-equivalent (``fl.defenses_dp.clip_and_noise_per_sample``).
BatchNorm mixes samples within a batch, so it cannot be used with DP-SGD (as in Opacus).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from gradleak.config import DpSgdConfig, ExperimentConfig
from gradleak.errors import ConfigError
from gradleak.fl.defenses import ClientDefensePipeline
from gradleak.fl.defenses_dp import clip_and_noise_per_sample, dp_epsilon
from gradleak.fl.executors import ClientJob
from gradleak.fl.functional import LocalSchedule, Params, cross_entropy
from gradleak.fl.protocol import local_schedule


@dataclass(frozen=True)
class DpSgdTrainer:
    """A :class:`~gradleak.fl.executors.LocalTrainer` that runs DP-SGD instead of plain SGD."""

    clip_norm: float
    noise_multiplier: float

    @classmethod
    def for_model(cls, cfg: DpSgdConfig, model: nn.Module) -> DpSgdTrainer:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ConfigError("DP-SGD cannot train a model with BatchNorm; set model.norm=groupnorm")
        return cls(cfg.clip_norm, cfg.noise_multiplier)

    def __call__(
        self, model: nn.Module, params: Params, job: ClientJob, schedule: LocalSchedule
    ) -> tuple[Params, Params]:
        buffers = job.buffers

        def sample_loss(p: Params, image: Tensor, label: Tensor) -> Tensor:
            logits = functional_call(model, {**p, **buffers}, (image.unsqueeze(0),))
            return cross_entropy(logits, label.unsqueeze(0))

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
        current = {k: v.detach() for k, v in params.items()}
        velocity: Params = {}
        for chunk in schedule.minibatches(job.images.shape[0]):
            grads = clip_and_noise_per_sample(
                per_sample(current, job.images[chunk], job.labels[chunk]),
                self.clip_norm,
                self.noise_multiplier,
                job.generator,
            )
            if schedule.momentum:
                velocity = {k: schedule.momentum * velocity.get(k, 0) + g for k, g in grads.items()}
                grads = velocity
            current = {k: current[k] - schedule.lr * grads[k] for k in current}
        pseudo = {k: (params[k].detach() - current[k]) / schedule.lr for k in params}
        return pseudo, {k: v.clone() for k, v in buffers.items()}


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
