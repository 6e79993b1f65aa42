"""What an attack inverts: an observed update and the procedure that produced it.

Every threat (a curious server, a curious peer, a malicious peer) reduces what its attacker
saw to one :class:`AttackTarget`: the weights the update started from, the observed update, and
an :class:`UpdateModel` that replays how unknown images would have produced it. Attacks are
written once against this and do not know which threat built it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gradleak.fl.functional import LocalSchedule, Params, local_update
from gradleak.fl.views import Capabilities
from gradleak.models import last_linear_names


def clip_update(update: Params, clip_norm: float) -> Params:
    """``update`` scaled to an L2 norm (over all its tensors) of at most ``clip_norm``."""
    norm = torch.stack([v.square().sum() for v in update.values()]).sum().sqrt()
    scale = (clip_norm / norm.clamp_min(1e-12)).clamp(max=1.0)
    return {k: v * scale for k, v in update.items()}


@dataclass(frozen=True)
class UpdateModel:
    """Replays how ``num_groups`` clients, each with an equal share of the batch, trained
    locally from the same weights; the observed update is their mean pseudo-gradient.

    One group is a single client (the server's view of one upload); several groups are the
    averaged peers a curious client sees through the global model.
    """

    model: nn.Module
    schedule: LocalSchedule
    num_groups: int = 1
    train_mode: bool = True
    clip_norm: float | None = None
    """Client DP's public clipping norm: each group's update is scaled to at most this L2 norm
    (over all tensors), as each client clipped its upload; differentiable like the rest."""

    def group_updates(
        self,
        params: Params,
        buffers: Params,
        images: Tensor,
        labels: Tensor,
        create_graph: bool = True,
    ) -> list[Params]:
        """Each group's pseudo-gradient, replayed from the same weights on its share of the batch."""
        self.model.train(self.train_mode)
        updates = [
            local_update(
                self.model, params, buffers, images[idx], labels[idx], self.schedule, create_graph
            )[0]
            for idx in torch.arange(images.shape[0]).chunk(self.num_groups)
        ]
        if self.clip_norm is None:
            return updates
        return [clip_update(update, self.clip_norm) for update in updates]

    def __call__(
        self,
        params: Params,
        buffers: Params,
        images: Tensor,
        labels: Tensor,
        create_graph: bool = True,
    ) -> Params:
        updates = self.group_updates(params, buffers, images, labels, create_graph)
        return {k: torch.stack([u[k] for u in updates]).mean(dim=0) for k in updates[0]}


@dataclass(frozen=True)
class AttackTarget:
    """Everything an attack may use. Ground truth is deliberately absent."""

    update_model: UpdateModel
    parameters: Params
    buffers: Params
    observed_update: Params
    num_images: int
    image_shape: tuple[int, int, int]
    num_classes: int
    capabilities: Capabilities
    labels: Tensor | None = None
    description: dict[str, object] = field(default_factory=dict)

    @property
    def model(self) -> nn.Module:
        return self.update_model.model

    @property
    def device(self) -> torch.device:
        return next(iter(self.parameters.values())).device


def target_from_batch(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    schedule: LocalSchedule | None = None,
    capabilities: Capabilities | None = None,
) -> AttackTarget:
    """The target a curious server would form from one client training on this batch, with
    the model's current weights: for tests and benchmarks that need no federation."""
    schedule = schedule or LocalSchedule()
    capabilities = capabilities or Capabilities()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    observed, _ = local_update(model, params, buffers, images, labels, schedule)
    return AttackTarget(
        update_model=UpdateModel(model, schedule, 1, model.training),
        parameters=params,
        buffers=buffers,
        observed_update=observed,
        num_images=images.shape[0],
        image_shape=(images.shape[1], images.shape[2], images.shape[3]),
        num_classes=model.get_parameter(last_linear_names(model)[0]).shape[0],
        capabilities=capabilities,
        labels=labels if capabilities.knows_labels else None,
    )
