"""Per-iteration overhead of gradleak's attack step against a plain PyTorch loop of the same maths.

Inverting Gradients' maths (1 − cosine of the whole gradient + TV, Adam on the signed gradient,
MultiStepLR at 3/8, 5/8, 7/8 of the run, clamp to [0, 1], keep the lowest-loss iterate) on a
FedSGD gradient of one seeded random image, through ``ATTACKS.get("inverting_gradients")`` and
through the ~25-line loop below, interleaved in one process at one thread (rotating order, so a
load spike on a shared machine hits both). Prints ms/it (wall and CPU time), the ratio
gradleak/plain and both final PSNRs against the private image (equal when the maths is equal).

    OMP_NUM_THREADS=1 python bench/bench_iteration_overhead.py [--iterations 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.target import AttackTarget, UpdateModel
from gradleak.config import AttackConfig
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities

LR, TV = 0.025, 0.8


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


class Case:
    def __init__(self, build: Callable[[], nn.Module], batch: int) -> None:
        torch.manual_seed(0)
        self.net = build().train()
        gen = torch.Generator().manual_seed(7)
        self.images = torch.rand(batch, 3, 32, 32, generator=gen)
        self.labels = torch.randint(0, 10, (batch,), generator=gen)
        self.names = [k for k, _ in self.net.named_parameters()]
        self.params = list(self.net.parameters())
        loss = F.cross_entropy(self.net(self.images), self.labels)
        self.grads = [g.detach() for g in torch.autograd.grad(loss, self.params)]


def run_plain(case: Case, n: int, seed: int = 1) -> Tensor:
    net, labels, params, target = case.net, case.labels, case.params, case.grads
    tnorm = torch.stack([t.pow(2).sum() for t in target]).sum().sqrt()
    x = torch.rand(case.images.shape, generator=torch.Generator().manual_seed(seed))
    x.requires_grad_(True)
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


def run_gradleak(case: Case, n: int, seed: int = 1) -> Tensor:
    target = AttackTarget(
        update_model=UpdateModel(case.net, LocalSchedule(), 1, True),
        parameters={k: v.detach().clone() for k, v in case.net.named_parameters()},
        buffers={k: v.detach().clone() for k, v in case.net.named_buffers()},
        observed_update=dict(zip(case.names, case.grads, strict=True)),
        num_images=case.images.shape[0],
        image_shape=(3, 32, 32),
        num_classes=10,
        capabilities=Capabilities(knows_labels=True),
        labels=case.labels,
    )
    config = AttackConfig(
        name="inverting_gradients", iterations=n, lr=LR, tv_weight=TV, labels="given", restarts=1
    )
    torch.manual_seed(seed)  # gradleak's init generator is seeded from torch.initial_seed()
    return ATTACKS.get("inverting_gradients")(config).reconstruct(target).images


def psnr(images: Tensor, truth: Tensor) -> float:
    mse = (images - truth).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


def timed(fn: Callable[[Case, int], Tensor], case: Case, n: int) -> tuple[float, float, Tensor]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(case, n)
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners = {"gradleak": run_gradleak, "plain": run_plain}
    for label, build in (("DLG-LeNet", lenet), ("ConvNet-16-small", convnet16_small)):
        case = Case(build, 1)
        for fn in runners.values():
            fn(case, 20)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
        scores: dict[str, float] = {}
        for r in range(args.repeats):
            order = list(runners) if r % 2 == 0 else list(reversed(runners))
            for name in order:
                wall, cpu, out = timed(runners[name], case, args.iterations)
                times[name].append((wall, cpu))
                scores[name] = psnr(out, case.images)
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in times.items()}  # fmt: skip
        g, p = med["gradleak"], med["plain"]
        print(
            f"{label} B=1 IG {args.iterations} it x{args.repeats}: "
            f"gradleak {g[0]:.2f} ms/it wall ({g[1]:.2f} CPU), plain {p[0]:.2f} ({p[1]:.2f}); "
            f"gradleak/plain wall {g[0] / p[0]:.3f} CPU {g[1] / p[1]:.3f}; "
            f"PSNR gradleak {scores['gradleak']:.2f} plain {scores['plain']:.2f}; "
            f"CPU repeats gl {[round(c, 2) for _, c in times['gradleak']]} "
            f"plain {[round(c, 2) for _, c in times['plain']]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
