"""What an attack inverts: an observed update and the procedure that produced it.

Every threat (a curious server, a curious peer, a malicious peer) reduces what its attacker
saw to one :class:`AttackTarget` (``attacks.targets`` builds them from observations): the
weights the update started from, the observed update, and an :class:`UpdateModel` that replays
how unknown images would have produced it. Attacks are written once against this and do not
know which threat built it. A :class:`MultiRoundTarget` holds several rounds matched jointly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor, nn

from gradleak.fl.functional import LocalSchedule, Params, local_update
from gradleak.fl.knowledge import Capabilities
from gradleak.fl.replay import group_updates
from gradleak.fl.stateless import set_mode
from gradleak.models import last_linear_names

if TYPE_CHECKING:
    from gradleak.data.text_tokenizer import TextTokenizer


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
        functional: bool = False,
    ) -> list[Params]:
        """Each group's pseudo-gradient, replayed from the same weights on its share of the
        batch (by ``torch.func`` when ``functional``: see :func:`fl.replay.group_updates`)."""
        set_mode(self.model, self.train_mode)
        return group_updates(
            self.model, self.schedule, self.num_groups, params, buffers, images, labels,
            self.clip_norm, create_graph, functional,
        )  # fmt: skip

    def __call__(
        self,
        params: Params,
        buffers: Params,
        images: Tensor,
        labels: Tensor,
        create_graph: bool = True,
        functional: bool = False,
    ) -> Params:
        """The observed update the replay predicts: the groups' mean pseudo-gradient (a single
        group's own, with no stack or mean to differentiate through)."""
        updates = self.group_updates(params, buffers, images, labels, create_graph, functional)
        if len(updates) == 1:
            return updates[0]
        return {k: torch.stack([u[k] for u in updates]).mean(dim=0) for k in updates[0]}


@dataclass(frozen=True)
class AttackTarget:
    """Everything an attack may use. Ground truth is deliberately absent."""

    update_model: UpdateModel
    parameters: Params
    buffers: Params
    observed_update: Params
    num_images: int
    image_shape: tuple[int, ...]
    """The shape of one input: (C, H, W) for images, (T,) for a sentence of T token ids."""
    num_classes: int
    capabilities: Capabilities
    labels: Tensor | None = None
    description: dict[str, object] = field(default_factory=dict)
    observed_buffers: Params | None = None
    """The client's BatchNorm buffers after its local training, when ``knows_buffers`` grants
    them: BatchNorm-statistics matching reads the batch's own statistics off them."""
    tokenizer: TextTokenizer | None = None
    """Text targets only: the deployed model's tokeniser (public: it ships with the model), so
    an attack can name special tokens and encode public text for a language-model prior."""

    @property
    def modality(self) -> str:
        """``"text"`` for a target of token ids, ``"image"`` otherwise."""
        return "text" if self.tokenizer is not None else "image"

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
    tokenizer: TextTokenizer | None = None,
) -> AttackTarget:
    """The target a curious server would form from one client training on this batch, with
    the model's current weights: for tests and benchmarks that need no federation. For text,
    ``images`` are token ids (B, T) and ``tokenizer`` is the model's."""
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
        image_shape=tuple(images.shape[1:]),
        num_classes=model.get_parameter(last_linear_names(model)[0]).shape[0],
        capabilities=capabilities,
        labels=labels if capabilities.knows_labels else None,
        tokenizer=tokenizer,
    )


@dataclass(frozen=True)
class MultiRoundTarget(AttackTarget):
    """A target observed over several rounds in which the peers kept the same images.

    Its own fields are the first round's, so any attack can use it as a single target; an
    attack that understands several rounds matches one dummy batch to all of :meth:`rounds`.
    """

    later_rounds: tuple[AttackTarget, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, targets: list[AttackTarget], **description: object) -> AttackTarget:
        """One target for ``targets`` (the first round's fields, ``description`` added); a
        single target stays as it is."""
        if len(targets) == 1:
            return targets[0]
        first = targets[0]
        own = {f.name: getattr(first, f.name) for f in fields(AttackTarget)}
        own["description"] = {**first.description, **description}
        return cls(**own, later_rounds=tuple(targets[1:]))

    def rounds(self) -> tuple[AttackTarget, ...]:
        return (self, *self.later_rounds)


def rounds_of(target: AttackTarget) -> tuple[AttackTarget, ...]:
    """Every round a target holds: one for a plain target."""
    return target.rounds() if isinstance(target, MultiRoundTarget) else (target,)


TargetT = TypeVar("TargetT", bound=AttackTarget)


def _with_lr(target: TargetT, lr: float) -> TargetT:
    schedule = target.update_model.schedule
    factor = schedule.lr / lr
    return replace(
        target,
        update_model=replace(target.update_model, schedule=replace(schedule, lr=lr)),
        observed_update={k: v * factor for k, v in target.observed_update.items()},
    )


def assume_local_lr(target: AttackTarget, lr: float) -> AttackTarget:
    """The target as an attacker believing the peers' local rate is ``lr`` forms it: the model
    change it measured is fixed, so Δ_peers scales by η/η̂ and the replay steps with η̂."""
    if isinstance(target, MultiRoundTarget):
        first = _with_lr(target, lr)
        return replace(first, later_rounds=tuple(_with_lr(t, lr) for t in target.later_rounds))
    return _with_lr(target, lr)
