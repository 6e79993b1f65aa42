"""Functional local training.

Clients and attackers both need "what update does this batch produce from these weights?". It
is written once here, over explicit parameter dicts with ``torch.func.functional_call``, so that
an attacker can replay a client's local steps differentiably (``create_graph=True``) and the
simulator can run the very same code without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]


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
    return functional_call(model, {**params, **buffers}, (images,))


def batch_loss(model: nn.Module, params: Params, buffers: Params, images: Tensor, labels: Tensor) -> Tensor:
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


def local_update(
    model: nn.Module,
    params: Params,
    buffers: Params,
    images: Tensor,
    labels: Tensor,
    schedule: LocalSchedule,
    create_graph: bool = False,
) -> tuple[Params, Params]:
    """Run the local SGD steps and return (pseudo-gradient, new buffers).

    The pseudo-gradient is (w_t − w_local) / lr, so one step of FedSGD returns exactly the
    gradient, and several steps return what FedAvg's update means in gradient units.
    """
    if create_graph:
        # Weights that are constants to the caller still need a graph to differentiate through.
        params = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()}
    else:
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    start = params
    current = dict(params)
    local_buffers = {k: v.clone() for k, v in buffers.items()}
    velocity: Params = {}
    for chunk in schedule.minibatches(images.shape[0]):
        grads = gradient(model, current, local_buffers, images[chunk], labels[chunk], create_graph)
        if schedule.momentum:
            velocity = {k: schedule.momentum * velocity.get(k, 0) + g for k, g in grads.items()}
            grads = velocity
        current = {k: current[k] - schedule.lr * grads[k] for k in current}
        if not create_graph:
            current = {k: v.detach().requires_grad_(True) for k, v in current.items()}
    pseudo = {k: (start[k] - current[k]) / schedule.lr for k in start}
    if not create_graph:
        pseudo = {k: v.detach() for k, v in pseudo.items()}
    return pseudo, local_buffers
