"""Quality against budget: matched PSNR and SSIM against iterations and wall time, per attack.

For each cell (data set x batch x attack) this forms one FedSGD gradient of a seeded image
subset on the model a preset names (``configs/presets/fedleak_b16_cpu.yaml`` by default), runs
the attack once on it with the preset's attack options (FedLeak) or the attack's own defaults
(Inverting Gradients with step 0.025, as the header's ``attack.name=inverting_gradients
attack.options={} attack.lr=0.025`` gives), and
scores the current images at checkpoints against the ground truth. Scoring happens in the
progress callback, outside the attack: the ground truth never reaches it, the parametrisation's
state (spectral-norm vectors included) is saved and restored around the render so the run is
not perturbed, and the time spent scoring is taken off the wall clock. The last row of a cell
scores what the attack returns (its lowest-loss iterate, median-filtered for FedLeak).

    OMP_NUM_THREADS=1 python bench/bench_quality_budget.py [--quick] [--iterations 400]
        [--seconds 1800] [--datasets cifar10 cifar100] [--batches 1 4 16]
        [--attacks fedleak inverting_gradients] [--seeds 1] [--set KEY=VALUE ...]
        [--out bench/results/quality_budget.png] [--record cells.jsonl] [--pictures DIR]
    python bench/bench_quality_budget.py --replot cells.jsonl [more.jsonl ...] [--out curves.png]

``--record`` appends every finished cell to a JSON-lines file as soon as it is scored (a killed
run keeps the cells it finished; several processes can each run some seeds), and ``--replot``
reads such files back without running anything: both end with the summary over seeds (mean ±
sample sd of what each attack returns, and FedLeak's paired gain over Inverting Gradients) and,
with ``--out``, the curves averaged over seeds. ``--pictures DIR`` saves each cell's returned
images under the true ones (matched, PSNR under each) as ``DIR/<attack>_<data>_B<batch>_seed<seed>.png``:
the goal is judged on the pictures as much as on the numbers. ``--medians 1 3 5`` also scores
FedLeak's returned images under each output median kernel (the filter is applied after the
optimisation, so one run answers for every kernel; 1 is no filter).

``--set`` takes preset overrides (``attack.options.generator_width=64``, ``model.width=32``,
``attack.lr=0.02``); ``--seconds`` stops a run early at that wall time (the schedule was laid
out for ``--iterations``, so a stopped run has not annealed: pick the iterations to fit).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS, Attack
from gradleak.attacks.fedleak import median_filter
from gradleak.attacks.gradient_matching import GradientMatchingAttack
from gradleak.attacks.parametrizations import Parametrization
from gradleak.attacks.target import AttackTarget, target_from_batch
from gradleak.config import AttackConfig, ExperimentConfig, load_config
from gradleak.data import load_dataset
from gradleak.fl.knowledge import Capabilities
from gradleak.metrics.scoring import ScoreReport, score_reconstruction
from gradleak.models import build_model

PRESET = Path(__file__).resolve().parents[1] / "configs" / "presets" / "fedleak_b16_cpu.yaml"


@dataclass(frozen=True)
class Point:
    iteration: int
    wall: float
    psnr: float
    ssim: float


@dataclass
class Cell:
    dataset: str
    batch: int
    attack: str
    seed: int
    points: list[Point] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.attack} {self.dataset} B={self.batch} seed {self.seed}"

    @property
    def group(self) -> tuple[str, str, int]:
        """What seeds are averaged over: the attack, the data set and the batch."""
        return self.attack, self.dataset, self.batch

    def to_json(self) -> str:
        points = [[p.iteration, p.wall, p.psnr, p.ssim] for p in self.points]
        return json.dumps({**{k: getattr(self, k) for k in KEYS}, "points": points})

    @classmethod
    def from_json(cls, line: str) -> Cell:
        raw = json.loads(line)
        cell = cls(str(raw["dataset"]), int(raw["batch"]), str(raw["attack"]), int(raw["seed"]))
        cell.points = [Point(int(i), float(w), float(p), float(s)) for i, w, p, s in raw["points"]]
        return cell


KEYS = ("dataset", "batch", "attack", "seed")


def checkpoints(iterations: int) -> set[int]:
    """Roughly geometric checkpoints (the curves move fastest early), the end included."""
    fractions = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)
    return {max(1, round(iterations * f)) for f in fractions}


def make_target(config: ExperimentConfig, batch: int, seed: int) -> tuple[AttackTarget, Tensor]:
    """One FedSGD gradient (labels given) of ``batch`` images drawn with ``seed``, on the
    preset's model initialised with ``seed``; returns it with the true images."""
    data_cfg = config.data.model_copy(update={"max_images": batch, "shuffle": True})
    data = load_dataset(data_cfg, seed)
    images = data.images.float()
    torch.manual_seed(seed)
    net = build_model(config.model, data.num_classes, images.shape[1], images.shape[-1])
    net.train(config.model.train_mode)
    caps = Capabilities(knows_labels=True)
    return target_from_batch(net, images, data.labels, capabilities=caps), images


def render(attack: Attack, param: Parametrization) -> Tensor:
    """The images the attack would return from this iterate, without disturbing the run."""
    state = param.state()
    with torch.no_grad():
        images = param.images().detach().clamp(0, 1)
    param.load_state(state)
    kernel = getattr(attack.options, "median_kernel", 1)
    return median_filter(images, kernel)


class Recorder:
    """Progress callback that scores the live iterate at checkpoints and can stop on time."""

    def __init__(
        self, attack: Attack, truth: Tensor, marks: set[int], seconds: float | None
    ) -> None:
        self.attack, self.truth, self.marks, self.seconds = attack, truth, marks, seconds
        self.param: Parametrization | None = None
        self.points: list[Point] = []
        self.start = time.perf_counter()
        self.scoring = 0.0

    def wall(self) -> float:
        return time.perf_counter() - self.start - self.scoring

    def __call__(self, iteration: int, loss: float) -> None:
        _ = loss
        if iteration in self.marks and self.param is not None:
            wall, begin = self.wall(), time.perf_counter()
            report = score_reconstruction(render(self.attack, self.param), self.truth)
            self.points.append(Point(iteration, wall, report.psnr_mean, report.ssim_mean))
            self.scoring += time.perf_counter() - begin
        if self.seconds is not None and self.wall() > self.seconds:
            raise KeyboardInterrupt  # the loop keeps the best iterate and returns


def capture(attack: GradientMatchingAttack, recorder: Recorder) -> None:
    """Make the attack hand each fresh parametrisation to ``recorder`` (bench-only hook)."""
    original = attack.parametrization

    def hooked() -> tuple[Callable[..., Parametrization], object]:
        factory, settings = original()

        def build(*args: object) -> Parametrization:
            recorder.param = factory(*args)  # type: ignore[arg-type]
            return recorder.param

        return build, settings

    attack.parametrization = hooked  # type: ignore[method-assign,assignment]


BASELINE_LR = {"inverting_gradients": 0.025}
"""Inverting Gradients' step on [0, 1] pixels: the paper's 0.1 in normalised units (CIFAR std
~0.25), as ``bench_attacks.IG_LR``; at batch 16 it also beat gradleak's default 0.1 in the
exploration (8.48 against 7.92 dB matched, 120 iterations, CIFAR-10 seed 0)."""


def attack_config(config: ExperimentConfig, name: str, iterations: int) -> AttackConfig:
    """The preset's attack section, or (another attack) its name with that attack's defaults
    and its step size from :data:`BASELINE_LR`: the swap the preset's header documents."""
    base = config.attack
    if name != base.name:
        lr = BASELINE_LR.get(name)
        base = base.model_copy(update={"name": name, "options": {}, "lr": lr, "tv_weight": None})
    return base.model_copy(update={"iterations": iterations, "log_every": 1})


def save_picture(
    cell: Cell, recon: Tensor, truth: Tensor, report: ScoreReport, folder: Path
) -> None:
    """The returned images, each under the true image ``report`` matched it to, PSNR beneath
    (``per_image`` is already in true-image order)."""
    from gradleak.experiments.pictures import save_reconstruction_grid

    pairs = report.per_image
    folder.mkdir(parents=True, exist_ok=True)
    save_reconstruction_grid(
        truth[[int(row["index"]) for row in pairs]],
        recon[[int(row["matched_to"]) for row in pairs]],
        [float(row["psnr"]) for row in pairs],
        folder / f"{cell.attack}_{cell.dataset}_B{cell.batch}_seed{cell.seed}.png",
        title=f"{cell.name}: {report.psnr_mean:.2f} dB matched, SSIM {report.ssim_mean:.3f}",
        max_columns=8,
    )


def run_cell(
    config: ExperimentConfig,
    cell: Cell,
    iterations: int,
    seconds: float | None,
    pictures: Path | None = None,
    medians: list[int] | None = None,
) -> Cell:
    target, truth = make_target(config, cell.batch, cell.seed)
    attack = ATTACKS.get(cell.attack)(attack_config(config, cell.attack, iterations))
    assert isinstance(attack, GradientMatchingAttack)
    recorder = Recorder(attack, truth, checkpoints(iterations), seconds)
    capture(attack, recorder)
    torch.manual_seed(cell.seed)
    recorder.start = time.perf_counter()
    recon = attack.reconstruct(target, recorder)
    wall = recorder.wall()
    report = score_reconstruction(recon.images, truth)
    cell.points = [
        *recorder.points,
        Point(recon.iterations, wall, report.psnr_mean, report.ssim_mean),
    ]
    if pictures is not None:
        save_picture(cell, recon.images, truth, report, pictures)
    generated = recon.extra.get("generator_images")
    if generated is not None:
        before = score_reconstruction(generated, truth)
        print(
            f"{cell.name}: the generator stage's images (iteration "
            f"{recon.extra['generator_iterations']}, before polishing): "
            f"{before.psnr_mean:.2f} dB / SSIM {before.ssim_mean:.3f}",
            flush=True,
        )
    unfiltered = recon.extra.get("unfiltered")
    kernels = medians if medians and unfiltered is not None else []
    for kernel in kernels:
        filtered = score_reconstruction(median_filter(unfiltered, kernel), truth)
        print(
            f"{cell.name}: returned images under a {kernel}x{kernel} median: "
            f"{filtered.psnr_mean:.2f} dB / SSIM {filtered.ssim_mean:.3f}",
            flush=True,
        )
    return cell


def print_cell(cell: Cell) -> None:
    for i, p in enumerate(cell.points):
        last = " (returned)" if i == len(cell.points) - 1 else ""
        print(
            f"| {cell.name} | {p.iteration}{last} | {p.wall:.0f} | {p.psnr:.2f} | {p.ssim:.3f} |",
            flush=True,
        )


def grouped(cells: list[Cell]) -> dict[tuple[str, str, int], list[Cell]]:
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    return groups


def mean_curve(cells: list[Cell]) -> list[Point]:
    """The live checkpoints averaged over seeds (cells of one group share their iterations)."""
    lives = [cell.points[:-1] or cell.points for cell in cells]
    length = min(len(live) for live in lives)
    return [
        Point(
            lives[0][k].iteration,
            statistics.fmean(live[k].wall for live in lives),
            statistics.fmean(live[k].psnr for live in lives),
            statistics.fmean(live[k].ssim for live in lives),
        )
        for k in range(length)
    ]


def spread(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def print_summary(cells: list[Cell]) -> None:
    """What each attack returns, over seeds; FedLeak minus Inverting Gradients paired by seed."""
    groups = grouped(cells)
    print("\n| attack | data set | B | seeds | matched PSNR dB (mean ± sd) | SSIM | wall s |")
    print("|---|---|---|---|---|---|---|")
    for (attack, dataset, batch), members in sorted(groups.items()):
        finals = [cell.points[-1] for cell in members]
        print(
            f"| {attack} | {dataset} | {batch} | {len(members)} | "
            f"{spread([p.psnr for p in finals])} | {spread([p.ssim for p in finals], 3)} | "
            f"{statistics.fmean(p.wall for p in finals):.0f} |"
        )
    for (attack, dataset, batch), members in sorted(groups.items()):
        if attack != "fedleak":
            continue
        baseline = {c.seed: c for c in groups.get(("inverting_gradients", dataset, batch), [])}
        gains = [
            c.points[-1].psnr - baseline[c.seed].points[-1].psnr
            for c in members
            if c.seed in baseline
        ]
        if gains:
            print(
                f"FedLeak − Inverting Gradients, {dataset} B={batch}: {spread(gains)} dB "
                f"matched PSNR over {len(gains)} paired seeds"
            )


def plot(cells: list[Cell], out: Path) -> None:
    """PSNR and SSIM against iterations and wall time, each curve the mean over its seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
    styles = {"fedleak": "-", "inverting_gradients": "--"}
    for (attack, dataset, batch), members in sorted(grouped(cells).items()):
        curve = mean_curve(members)
        label = f"{attack} {dataset} B={batch} ({len(members)} seeds)"
        for row, metric in enumerate(("psnr", "ssim")):
            for col, axis in enumerate(("iteration", "wall")):
                xs = [getattr(p, axis) for p in curve]
                ys = [getattr(p, metric) for p in curve]
                axes[row][col].plot(xs, ys, styles.get(attack, ":"), marker=".", label=label)
                axes[row][col].set_xlabel("iterations" if axis == "iteration" else "wall s")
                axes[row][col].set_ylabel("matched PSNR (dB)" if metric == "psnr" else "SSIM")
                axes[row][col].set_xscale("log")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    rows = math.ceil(len(labels) / 3)
    fig.tight_layout(rect=(0, 0.025 * rows + 0.02, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)


def machine() -> str:
    """This machine's CPU and core count, as the kernel names them (for the log's header)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def finish(cells: list[Cell], out: Path | None) -> None:
    print_summary(cells)
    if out is not None:
        plot(cells, out)
        print(f"curves: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, default=PRESET)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--attacks", nargs="+", default=["fedleak", "inverting_gradients"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    parser.add_argument("--seconds", type=float, default=None, help="wall cap per attack")
    parser.add_argument("--quick", action="store_true", help="20 iterations, B=1 and 4 only")
    parser.add_argument("--out", type=Path, default=None, help="PNG of the curves")
    parser.add_argument("--record", type=Path, default=None, help="append cells as JSON lines")
    parser.add_argument("--replot", type=Path, nargs="+", default=None, help="recorded cells")
    parser.add_argument("--pictures", type=Path, default=None, help="folder for image grids")
    parser.add_argument("--medians", type=int, nargs="+", default=None, help="FedLeak kernels")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.replot is not None:
        lines = [line for path in args.replot for line in path.read_text().splitlines()]
        finish([Cell.from_json(line) for line in lines if line.strip()], args.out)
        return
    config = load_config(args.preset, args.overrides)
    iterations = args.iterations or config.attack.iterations
    batches = args.batches
    if args.quick:
        iterations, batches = 20, [b for b in batches if b <= 4] or [1]
    print(
        f"preset {args.preset.name} {' '.join(args.overrides)}; model {config.model.name} "
        f"width {config.model.width} {config.model.activation}; {iterations} iterations, "
        f"wall cap {args.seconds} s; 1 thread; load average at start {os.getloadavg()[0]:.2f} "
        f"({machine()})\n"
    )
    print("| cell | iteration | wall s | matched PSNR dB | SSIM |")
    print("|---|---|---|---|---|")
    cells = []
    for seed in args.seeds:
        for dataset in args.datasets:
            for batch in batches:
                for name in args.attacks:
                    data = config.data.model_copy(update={"name": dataset})
                    cell = Cell(dataset, batch, name, seed)
                    run_cell(
                        config.model_copy(update={"data": data}),
                        cell,
                        iterations,
                        args.seconds,
                        args.pictures,
                        args.medians,
                    )
                    print_cell(cell)
                    cells.append(cell)
                    if args.record is not None:
                        with args.record.open("a") as record:
                            record.write(cell.to_json() + "\n")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    finish(cells, args.out)


if __name__ == "__main__":
    main()
