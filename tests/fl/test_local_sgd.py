"""The one local-SGD loop and the gradients it is driven by: autograd, ``torch.func`` and
DP-SGD's clipped, noised per-sample gradients (checked against Opacus' DPOptimizer)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from federation_helpers import config_with, rounding_tolerance, synthetic_data
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from gradleak.experiments.threats import build_model_for
from gradleak.fl.defenses_dp import clip_to_norm
from gradleak.fl.dp_training import DpSgdTrainer
from gradleak.fl.executors import ClientJob
from gradleak.fl.flatten import ParamLayout
from gradleak.fl.functional import LocalSchedule, Params, local_update, split_state

SCHEDULE = LocalSchedule(steps=3, lr=0.1, batch_size=4, momentum=0.5)
BATCH = 8


def _groupnorm_model() -> nn.Module:
    data = synthetic_data()
    torch.manual_seed(0)
    model = build_model_for(config_with("model.norm=groupnorm"), data, torch.device("cpu"))
    return model.train()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = synthetic_data()
    return data.images[:BATCH], data.labels[:BATCH]


def _relative_gap(a: Params, b: Params) -> float:
    scale = max(float(v.abs().max()) for v in b.values())
    return max(float((a[k] - b[k]).abs().max()) for k in b) / scale


def _terms(images: torch.Tensor) -> int:
    """Additions behind one weight of the update (see ``rounding_tolerance``)."""
    return (SCHEDULE.batch_size or BATCH) * images.shape[-1] ** 2 * SCHEDULE.steps


def _opacus_pseudo_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clip_norm: float
) -> Params:
    """The same local steps with Opacus: per-sample gradients of a mean loss, clipped by its
    DPOptimizer (no noise), then the wrapped SGD with momentum."""
    module = GradSampleModule(copy.deepcopy(model))
    sgd = torch.optim.SGD(module.parameters(), lr=SCHEDULE.lr, momentum=SCHEDULE.momentum)
    batch = SCHEDULE.batch_size or BATCH
    optimizer = DPOptimizer(
        sgd, noise_multiplier=0.0, max_grad_norm=clip_norm, expected_batch_size=batch
    )
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    for chunk in SCHEDULE.minibatches(images.shape[0]):
        optimizer.zero_grad()
        F.cross_entropy(module(images[chunk]), labels[chunk]).backward()
        optimizer.step()
    end = dict(module._module.named_parameters())
    return {k: (start[k] - end[k].detach()) / SCHEDULE.lr for k in start}


def _dp_sgd(model: nn.Module, clip_norm: float, noise: float, seed: int = 0) -> Params:
    images, labels = _batch()
    params, buffers = split_state(model)
    job = ClientJob(images, labels, buffers, torch.Generator().manual_seed(seed))
    update, _ = DpSgdTrainer(clip_norm, noise)(model, params, job, SCHEDULE)
    return update


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
def test_dp_sgd_matches_opacus_dp_optimizer_with_clipping_binding() -> None:
    model = _groupnorm_model()
    images, labels = _batch()
    plain, _ = local_update(model, *split_state(model), images, labels, SCHEDULE)
    per_step_norm = max(float(v.norm()) for v in plain.values())
    clip_norm = 0.1 * per_step_norm  # well below the gradients' norms: clipping changes the step
    ours = _dp_sgd(model, clip_norm, 0.0)
    theirs = _opacus_pseudo_gradient(model, images, labels, clip_norm)
    assert _relative_gap(ours, plain) > 0.1, "the clip norm should bind"
    assert _relative_gap(ours, theirs) <= rounding_tolerance(torch.float32, _terms(images))


def test_dp_sgd_without_clipping_or_noise_is_plain_local_sgd() -> None:
    """DP-SGD only transforms the step's gradient: with a clip norm no sample reaches and no
    noise, the mean of the per-sample gradients is the batch gradient, and the loop is SGD's."""
    model = _groupnorm_model()
    images, labels = _batch()
    plain, _ = local_update(model, *split_state(model), images, labels, SCHEDULE)
    ours = _dp_sgd(model, 1e6, 0.0)
    assert _relative_gap(ours, plain) <= rounding_tolerance(torch.float32, _terms(images))


def test_dp_sgd_noise_comes_from_the_clients_generator() -> None:
    model = _groupnorm_model()
    first, again, other = (_dp_sgd(model, 1.0, 1.0, seed) for seed in (0, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert _relative_gap(first, other) > 0.01


@pytest.mark.parametrize("clip_norm", [1e-3, 1.0, 1e6])
def test_a_dict_is_clipped_exactly_as_its_flat_vector(clip_norm: float) -> None:
    """The attacker's replay clips named tensors, the federation clips the flat upload: the
    same factor for both, bit for bit, so a replay sees the upload the server saw."""
    model = _groupnorm_model()
    images, labels = _batch()
    update, _ = local_update(model, *split_state(model), images, labels, SCHEDULE)
    layout = ParamLayout.of(update)
    as_dict = layout.flatten(clip_to_norm(update, clip_norm))
    as_flat = clip_to_norm(layout.flatten(update), clip_norm)
    assert torch.equal(as_dict, as_flat)
    assert float(as_flat.norm()) <= clip_norm * (
        1 + torch.finfo(torch.float32).eps * as_flat.numel()
    )
    unclipped = float(layout.flatten(update).norm())
    assert float(as_flat.norm()) == pytest.approx(min(clip_norm, unclipped), rel=1e-5)


def test_clipping_a_zero_update_leaves_it_zero() -> None:
    zero = {"w": torch.zeros(3, 2), "b": torch.zeros(2)}
    clipped = clip_to_norm(zero, 1.0)
    assert all(torch.equal(clipped[k], zero[k]) for k in zero)
