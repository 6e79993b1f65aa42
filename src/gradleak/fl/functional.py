"""Functional local training.

Clients and attackers both need "what update does this batch produce from these weights?". The
local SGD loop is written once here (:func:`sgd_steps`), over explicit parameter dicts
(:func:`fl.stateless.call_with`, ``torch.func.functional_call`` without its per-call cost). What differs between its users is only how a step's gradient is
computed, a :data:`GradFn`: autograd, with ``create_graph=True`` when an attacker replays a
client's steps differentiably (:func:`autograd_gradient`); ``torch.func.grad``, which ``vmap``
can batch over clients (:func:`func_gradient`); or DP-SGD's clipped and noised per-sample
gradients (``fl.dp_training``), where differential privacy transforms the gradient and leaves
the loop alone, as Opacus' ``DPOptimizer.pre_step`` does before the plain optimiser's step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad

from gradleak.fl.stateless import call_with

Params = dict[str, Tensor]

GradFn = Callable[[Params, Params, Tensor, Tensor], tuple[Params, Params]]
"""One local step's gradient: ``(params, buffers, images, labels) -> (gradient, buffers)``.

The buffers it returns are those after the step's forward pass (BatchNorm running statistics);
it may update the ones it is given in place, and :func:`sgd_steps` hands it copies it owns.
"""


def split_state(model: nn.Module) -> tuple[Params, Params]:
    """Detached copies of a module's parameters and buffers, keyed by their qualified names."""
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return params, buffers


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy for hard labels (B,) or soft label distributions (B, K)."""
    if labels.ndim == 2:
        return -(labels * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
    return F.cross_entropy(logits, labels)


def forward(model: nn.Module, params: Params, buffers: Params, images: Tensor) -> Tensor:
    """Logits of ``model`` under ``params``/``buffers``; buffers are updated in place in train
    mode (BatchNorm running statistics), so callers pass copies they own."""
    return call_with(model, {**params, **buffers}, (images,))


def batch_loss(
    model: nn.Module, params: Params, buffers: Params, images: Tensor, labels: Tensor
) -> Tensor:
    return cross_entropy(forward(model, params, buffers, images), labels)


def gradient(
    model: nn.Module,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    create_graph: bool = False,
) -> Params:
    """d loss / d params on one batch (the FedSGD upload)."""
    loss = batch_loss(model, params, buffers, images, labels)
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
    return dict(zip(names, grads, strict=True))


@dataclass(frozen=True)
class LocalSchedule:
    """How a client trains locally: public protocol parameters an attacker may know."""

    steps: int = 1
    lr: float = 0.1
    batch_size: int | None = None
    momentum: float = 0.0

    def gradient_multiplicity(self) -> float:
        """How many mean batch gradients the pseudo-gradient adds up when the gradient stays
        constant: τ for plain SGD, Σ_s Σ_{j≤s} μ^j with momentum μ (minibatches cover the batch
        evenly, so each step's mean gradient is the batch's in expectation)."""
        return float(sum(sum(self.momentum**j for j in range(s + 1)) for s in range(self.steps)))

    def minibatches(self, num_samples: int) -> list[slice]:
        """The slices of the client's batch used at each local step, in order (epochs cycle)."""
        size = self.batch_size or num_samples
        chunks = [slice(s, min(s + size, num_samples)) for s in range(0, num_samples, size)]
        return [chunks[i % len(chunks)] for i in range(self.steps)]


def autograd_gradient(model: nn.Module, create_graph: bool = False) -> GradFn:
    """The batch gradient by autograd. With ``create_graph`` it stays differentiable with
    respect to the weights and images it came from (an attacker's replay); without, each step
    starts from detached weights so that no graph outlives the step."""

    def grad_fn(
        params: Params, buffers: Params, images: Tensor, labels: Tensor
    ) -> tuple[Params, Params]:
        if not create_graph:
            params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        return gradient(model, params, buffers, images, labels, create_graph), buffers

    return grad_fn


def func_gradient(model: nn.Module) -> GradFn:
    """The batch gradient by ``torch.func.grad``, which ``vmap`` can batch over clients."""

    def loss(
        params: Params, buffers: Params, images: Tensor, labels: Tensor
    ) -> tuple[Tensor, Params]:
        return batch_loss(model, params, buffers, images, labels), buffers

    return grad(loss, has_aux=True)


def sgd_steps(
    grad_fn: GradFn,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    schedule: LocalSchedule,
) -> tuple[Params, Params]:
    """Local SGD (heavy-ball momentum) from ``params`` on the schedule's minibatches of
    ``images``: (pseudo-gradient, buffers after the last step).

    The pseudo-gradient is (w_t − w_local) / lr, so several steps return what FedAvg's update
    means in gradient units. One step (FedSGD; momentum does not act on a first step) returns
    the gradient itself: the (w − (w − lr·g))/lr arithmetic would equal it only up to float
    rounding and costs an attacker's differentiable replay a third more autograd work per
    iteration. Clients and replays both run this code, so they agree either way.
    ``buffers`` are copied before the first step, so the caller's stay untouched.
    """
    chunks = schedule.minibatches(images.shape[0])
    if len(chunks) == 1:
        local_buffers = {k: v.clone() for k, v in buffers.items()}
        if chunks[0] != slice(0, images.shape[0]):
            images, labels = images[chunks[0]], labels[chunks[0]]
        return grad_fn(params, local_buffers, images, labels)
    return unrolled_sgd_steps(grad_fn, params, buffers, images, labels, schedule)


def unrolled_sgd_steps(
    grad_fn: GradFn,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    schedule: LocalSchedule,
) -> tuple[Params, Params]:
    """:func:`sgd_steps` without its one-step shortcut: every step applied to the weights and
    the pseudo-gradient read off them, whatever the number of steps (the general path, which
    the shortcut must agree with up to rounding)."""
    current = dict(params)
    local_buffers = {k: v.clone() for k, v in buffers.items()}
    velocity: Params = {}
    for chunk in schedule.minibatches(images.shape[0]):
        grads, local_buffers = grad_fn(current, local_buffers, images[chunk], labels[chunk])
        if schedule.momentum:
            velocity = {k: schedule.momentum * velocity.get(k, 0) + g for k, g in grads.items()}
            grads = velocity
        current = {k: current[k] - schedule.lr * grads[k] for k in current}
    return {k: (params[k] - current[k]) / schedule.lr for k in params}, local_buffers


def local_update(
    model: nn.Module,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    schedule: LocalSchedule,
    create_graph: bool = False,
) -> tuple[Params, Params]:
    """A client's local training by autograd: :func:`sgd_steps` with :func:`autograd_gradient`.

    With ``create_graph`` the pseudo-gradient is differentiable with respect to the images and
    to ``params`` (weights that do not require gradients are given a graph to differentiate
    through); without, it is detached.
    """
    if create_graph:
        params = {
            k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()
        }
    else:
        params = {k: v.detach() for k, v in params.items()}
    grad_fn = autograd_gradient(model, create_graph)
    return sgd_steps(grad_fn, params, buffers, images, labels, schedule)
