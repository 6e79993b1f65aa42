"""What the per-iteration benches share: the models, one case's target gradient, gradleak's
Inverting Gradients driven on a given gradient, the plain loop of the same maths, PSNR, timing.

The plain loop is gradleak's maths written directly (1 − cosine of the whole gradient vector +
TV as the mean of valid differences, Adam on the signed gradient, MultiStepLR at 3/8, 5/8, 7/8,
clamp to [0, 1], keep the lowest-loss pre-step iterate, the same seeded ``torch.rand`` start),
so gradleak/plain is pure framework overhead and the two PSNRs agree when the maths does.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.batched import invert_trials
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import LoopSettings
from gradleak.attacks.target import AttackTarget, UpdateModel
from gradleak.config import AttackConfig, default_data_root
from gradleak.data.cifar import read_cifar10
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities

# gradleak works on [0, 1] pixels; breaching's IG settings (signed Adam step 0.1, TV 0.2) are in
# normalised units. 0.1·std ≈ 0.025 per channel, and TV on (x − m)/s is Σ_c TV_c(x)/s_c ≈
# mean(1/s)·TV(x) → 0.2·3.99 ≈ 0.8 (../shared/docs/PERF.md, "Translating the settings").
LR, TV = 0.025, 0.8
CIFAR10_MEAN = (0.4914672374725342, 0.4822617471218109, 0.4467701315879822)
CIFAR10_STD = (0.24703224003314972, 0.24348513782024384, 0.26158785820007324)
IMAGE_SHAPE = (3, 32, 32)
T = TypeVar("T")


def lenet() -> nn.Module:
    """DLG's LeNet (3 conv5×5 + sigmoid, linear 768→10) at PyTorch's default init."""
    return nn.Sequential(
        nn.Conv2d(3, 12, 5, padding=2, stride=2), nn.Sigmoid(),
        nn.Conv2d(12, 12, 5, padding=2, stride=2), nn.Sigmoid(),
        nn.Conv2d(12, 12, 5, padding=2, stride=1), nn.Sigmoid(),
        nn.Flatten(), nn.Linear(768, 10),
    )  # fmt: skip


def convnet16_small() -> nn.Module:
    """conv 3→16→32→64 with ReLU, two max-pools, linear 4096→10."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 10),
    )  # fmt: skip


MODELS: dict[str, Callable[[], nn.Module]] = {
    "DLG-LeNet": lenet,
    "ConvNet-16-small": convnet16_small,
}


class Normalized(nn.Module):
    """[0, 1] pixels → (x − mean)/std → the model: lets gradleak attack a model that expects
    normalised input (as breaching's models do). Mean and std are plain attributes, not
    buffers, so the attack sees exactly the wrapped model's parameters and buffers."""

    def __init__(self, net: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.net = net
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


def cifar10_test(count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` CIFAR-10 test images in [0, 1] and their labels (the offline copy,
    read with gradleak's code-free unpickler)."""
    raw = read_cifar10(default_data_root(), "test", False)
    assert isinstance(raw.images, Tensor)
    return raw.images[:count].float() / 255.0, raw.labels[:count].long()


def seeded_images(count: int, seed: int = 7) -> tuple[Tensor, Tensor]:
    """Seeded uniform images and labels, for a bench that needs no data set."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(count, *IMAGE_SHAPE, generator=gen), torch.randint(
        0, 10, (count,), generator=gen
    )


@dataclass
class Case:
    """One model and batch; its FedSGD gradient is computed once and handed to every runner.

    ``net`` is the raw model (normalised input when ``normalise``), ``model`` what gradleak and
    the plain loop attack on [0, 1] pixels; ``grads`` follow ``model.named_parameters()``.
    """

    net: nn.Module
    model: nn.Module
    images: Tensor
    labels: Tensor
    names: list[str]
    grads: list[Tensor]

    @property
    def batch(self) -> int:
        return int(self.images.shape[0])

    @property
    def params(self) -> list[Tensor]:
        return list(self.model.parameters())


def make_case(
    build: Callable[[], nn.Module], images: Tensor, labels: Tensor, normalise: bool
) -> Case:
    """Seed 0 before the model (PyTorch's default init), train mode, one mean-CE gradient."""
    torch.manual_seed(0)
    net = build().train()
    model: nn.Module = net
    if normalise:
        mean = torch.tensor(CIFAR10_MEAN)[None, :, None, None]
        std = torch.tensor(CIFAR10_STD)[None, :, None, None]
        model = Normalized(net, mean, std)
    names = [k for k, _ in model.named_parameters()]
    loss = F.cross_entropy(model(images), labels)
    grads = [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]
    return Case(net, model, images, labels, names, grads)


def initial_images(batch: int, seed: int) -> Tensor:
    """The start gradleak draws for ``torch.manual_seed(seed)`` and the plain loop reuses."""
    return torch.rand((batch, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


def run_plain(case: Case, n: int, seed: int = 1) -> Tensor:
    net, labels, params, target = case.model, case.labels, case.params, case.grads
    tnorm = torch.stack([t.pow(2).sum() for t in target]).sum().sqrt()
    x = initial_images(case.batch, seed).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=LR)
    ms = [int(n * 3 / 8), int(n * 5 / 8), int(n * 7 / 8)]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, ms, 0.1)
    best, best_loss = x.detach().clone(), math.inf
    for _ in range(n):
        g = torch.autograd.grad(F.cross_entropy(net(x), labels), params, create_graph=True)
        dot = torch.stack([(a * b).sum() for a, b in zip(g, target, strict=True)]).sum()
        gnorm = torch.stack([a.pow(2).sum() for a in g]).sum().sqrt()
        tv = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
        tv = tv + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
        loss = 1 - dot / (gnorm * tnorm + 1e-12) + TV * tv
        if loss.item() < best_loss:
            best_loss, best = loss.item(), x.detach().clone()
        (gx,) = torch.autograd.grad(loss, [x])
        x.grad = gx.sign()
        opt.step()
        sched.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return best.clamp(0, 1)


def gradleak_target(case: Case) -> AttackTarget:
    """The observed FedSGD gradient as gradleak's attacker sees it (one group, train mode)."""
    return AttackTarget(
        update_model=UpdateModel(case.model, LocalSchedule(), 1, True),
        parameters={k: v.detach().clone() for k, v in case.model.named_parameters()},
        buffers={k: v.detach().clone() for k, v in case.model.named_buffers()},
        observed_update=dict(zip(case.names, case.grads, strict=True)),
        num_images=case.batch,
        image_shape=IMAGE_SHAPE,
        num_classes=10,
        capabilities=Capabilities(knows_labels=True),
        labels=case.labels,
    )


def run_gradleak(case: Case, n: int, seed: int = 1) -> Tensor:
    """``inverting_gradients`` through the registry, target built inside (it is set-up cost)."""
    target = gradleak_target(case)
    config = AttackConfig(
        name="inverting_gradients", iterations=n, lr=LR, tv_weight=TV, labels="given", restarts=1
    )
    torch.manual_seed(seed)  # gradleak's init generator is seeded from torch.initial_seed()
    return ATTACKS.get("inverting_gradients")(config).reconstruct(target).images


def run_gradleak_batched(cases: list[Case], n: int, seed: int = 1) -> Tensor:
    """Independent single-image attacks on one model as one vmapped batch (``invert_trials``);
    returns (T, C, H, W), trial t reconstructing case t."""
    model = cases[0].model
    observed = {
        name: torch.stack([c.grads[i] for c in cases]) for i, name in enumerate(cases[0].names)
    }
    labels = torch.stack([c.labels for c in cases])  # (T, 1)
    result = invert_trials(
        model,
        {k: v.detach() for k, v in model.named_parameters()},
        {k: v.detach() for k, v in model.named_buffers()},
        labels,
        observed,
        IMAGE_SHAPE,
        OBJECTIVES.get("cosine"),
        LoopSettings(n, LR),
        TV,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.images[:, 0]


def psnr_matrix(images: Tensor, truth: Tensor) -> np.ndarray:
    """(B_rec, B_true) PSNR in dB on [0, 1]."""
    mse = (images[:, None] - truth[None]).pow(2).flatten(2).mean(-1).clamp_min(1e-12)
    return (10 * torch.log10(1 / mse)).detach().numpy()


def psnr(images: Tensor, truth: Tensor) -> float:
    """Mean PSNR of image i against truth i."""
    return float(np.mean(np.diag(psnr_matrix(images, truth))))


def psnr_matched(images: Tensor, truth: Tensor) -> float:
    """Mean PSNR after the Hungarian matching that maximises it (B > 1 may come back permuted)."""
    from scipy.optimize import linear_sum_assignment

    scores = psnr_matrix(images, truth)
    rows, cols = linear_sum_assignment(-scores)
    return float(scores[rows, cols].mean())


def timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall s, CPU s of this process, result). At one thread CPU time is the work done, far
    steadier than wall time on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def rotations(names: list[str], repeats: int) -> list[list[str]]:
    """Repeat r runs the names rotated by r, so a load spike does not always hit one runner."""
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(repeats)]


def load() -> str:
    """The 1-minute load average, for the record beside every figure."""
    return f"{os.getloadavg()[0]:.2f}"
