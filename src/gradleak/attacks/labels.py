"""Label recovery from an observed update (the attacker does not see labels).

Both methods read the last linear layer's gradient. With cross-entropy, the bias gradient of
class c is the batch mean of (p_c − 1[y = c]), so it is negative exactly where a label is
present (iDLG), and its size counts how many samples carry that label.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradleak.attacks.target import AttackTarget
from gradleak.errors import CapabilityError
from gradleak.fl.functional import Params, forward
from gradleak.models import last_linear_names as last_linear


def class_signal(model: nn.Module, update: Params) -> Tensor:
    """Per-class gradient signal: the bias gradient, or the row sums of the weight gradient."""
    weight_name, bias_name = last_linear(model)
    if bias_name is not None and bias_name in update:
        return update[bias_name].detach()
    return update[weight_name].detach().sum(dim=1)


def recover_single_label(model: nn.Module, update: Params) -> Tensor:
    """iDLG: the one class whose signal is negative (the minimum)."""
    return class_signal(model, update).argmin().reshape(1)


def random_inputs(
    model: nn.Module, input_shape: tuple[int, ...], count: int, generator: torch.Generator
) -> Tensor:
    """``count`` random inputs the model accepts: images uniform on [0, 1] for an image shape
    (C, H, W), uniformly drawn token ids for a text shape (T,) (the vocabulary is the model's
    token embedding, public with the model)."""
    embedding = getattr(model, "token_embedding", None)
    if len(input_shape) == 1 and isinstance(embedding, nn.Embedding):
        return torch.randint(embedding.num_embeddings, (count, *input_shape), generator=generator)
    return torch.rand((count, *input_shape), generator=generator)


def _expected_probabilities(
    model: nn.Module,
    params: Params,
    buffers: Params,
    image_shape: tuple[int, ...],
    probes: int = 32,
) -> tuple[Tensor, Tensor]:
    """Mean softmax output and mean last-layer input on random images: what the attacker can
    compute from the model alone, standing in for the unknown batch's averages."""
    weight_name, _ = last_linear(model)
    module_name = weight_name.rsplit(".", 1)[0] if "." in weight_name else ""
    features: list[Tensor] = []
    module = model.get_submodule(module_name)
    handle = module.register_forward_hook(lambda _m, inp, _o: features.append(inp[0].detach()))
    try:
        generator = torch.Generator().manual_seed(0)
        device = next(iter(params.values())).device
        probe = random_inputs(model, image_shape, probes, generator).to(device)
        with torch.no_grad():
            logits = forward(model, params, {k: v.clone() for k, v in buffers.items()}, probe)
    finally:
        handle.remove()
    return logits.softmax(-1).mean(0), features[0].abs().sum(1).mean()


def feature_scale(signal: Tensor, mean_prob: Tensor, probe_feature: Tensor) -> Tensor:
    """The batch's mean last-layer input size F̄ that turns a bias-free head's row sums into
    count units, s_c ≈ F̄·(p̄_c − n_c/B).

    Random probes are a poor stand-in for real images here: on the shipped curious-client
    LeNet (seed 0) their features are 1.6× larger than the peers' CIFAR-10 images', which
    pulls every count toward B·p̄_c and got one label in 12 wrong. The counts cannot be
    negative, so F̄ ≥ s_c/p̄_c for every class, with equality for any class absent from the
    batch: the largest ratio is exact whenever a class is missing (certain for B < K, and
    for B = 12 images of K = 10 uniform classes in 99.4 % of batches); with every class present it
    underestimates F̄ and spreads the counts. The probes' figure is used only when no ratio
    is positive (an all-zero signal)."""
    ratio = (signal / mean_prob.clamp_min(1e-12)).max()
    return torch.where(ratio > 0, ratio, probe_feature).clamp_min(1e-12)


def recover_label_counts(
    model: nn.Module,
    params: Params,
    buffers: Params,
    update: Params,
    batch_size: int,
    image_shape: tuple[int, ...],
    multiplicity: float = 1.0,
) -> Tensor:
    """Count-based labels for a batch: count_c ≈ B·(p̄_c − g_c), with p̄ the model's mean
    prediction estimated on random probes, then rounded so the counts sum to B.

    ``multiplicity``: how many mean gradients the update holds (τ local steps add up τ of them,
    see ``LocalSchedule.gradient_multiplicity``); the signal is divided by it, else a FedAvg
    update would count every label τ times over."""
    _, bias_name = last_linear(model)
    mean_prob, mean_feature = _expected_probabilities(model, params, buffers, image_shape)
    signal = class_signal(model, update).to(mean_prob) / multiplicity
    if bias_name is None or bias_name not in update:
        signal = signal / feature_scale(signal, mean_prob, mean_feature)
    estimate = (batch_size * (mean_prob - signal)).clamp_min(0)
    counts = estimate.floor()
    counts[signal < 0] = counts[signal < 0].clamp_min(1)
    while counts.sum() < batch_size:
        counts[(estimate - counts).argmax()] += 1
    while counts.sum() > batch_size:
        counts[
            torch.where(counts > 0, counts - estimate, torch.full_like(counts, -1e9)).argmax()
        ] -= 1
    return torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts.long())


def recover_labels(
    model: nn.Module,
    params: Params,
    buffers: Params,
    update: Params,
    batch_size: int,
    image_shape: tuple[int, ...],
    multiplicity: float = 1.0,
) -> Tensor:
    """iDLG for one image, count-based for a batch."""
    if batch_size == 1:
        return recover_single_label(model, update)
    return recover_label_counts(
        model, params, buffers, update, batch_size, image_shape, multiplicity
    )


def resolve_labels(mode: str, target: AttackTarget) -> Tensor:
    """The labels an attack works with: the target's when ``mode`` is "given" (the capability
    check has already passed), else recovered from the observed update."""
    if mode == "given":
        if target.labels is None:
            raise CapabilityError(
                "attack.labels=given, but the attacker's target carries no labels: set "
                "threat.knows_labels=true, or attack.labels=recovered"
            )
        return target.labels
    return recover_labels(
        target.model,
        target.parameters,
        target.buffers,
        target.observed_update,
        target.num_images,
        target.image_shape,
        target.update_model.schedule.gradient_multiplicity(),
    )
