"""The curious client with recovered labels over seeds: how the labels are dealt to the peers.

Each cell runs ``gradleak run configs/curious_client.yaml --set seed=S ...`` (4 clients × 4
images, 300 iterations per stage, the shipped settings) into its own run folder under
``--out``, two runs at a time (one thread each), and skips a cell whose folder already holds a
``metrics.json``, so a killed bench resumes where it stopped and every figure can be rerun from
its folder. Variants:

- ``sorted``: recovered labels dealt to the peers in sorted order, no regrouping (as before);
- ``sorted+regroup``: the same, then (image, label) pairs moved between peers by the matching
  loss after each stage but the last (``attacks.regrouping``);
- ``spread+regroup``: copies of a label dealt to different peers first, then regrouped;
- ``given``: the true labels, in their peers' order (the reference).

Prints, per data set and variant, matched PSNR and SSIM as mean ± 95 % Student-t interval
over the seeds, the per-seed figures, and the label accuracy.

    python bench/bench_curious_labels.py --out DIR [--seeds 0 1 2] [--data cifar10 cifar100]
        [--variants sorted sorted+regroup spread+regroup given] [--jobs 2] [--iterations 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_malicious_client import interval  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "curious_client.yaml"
VARIANTS: dict[str, list[str]] = {
    "sorted": ["attack.options.deal=sorted", "attack.options.regroup=false"],
    "sorted+regroup": ["attack.options.deal=sorted", "attack.options.regroup=true"],
    "spread+regroup": ["attack.options.deal=spread", "attack.options.regroup=true"],
    "given": ["attack.labels=given", "threat.knows_labels=true"],
}


def folder(out: Path, data: str, variant: str, seed: int) -> Path:
    return out / f"{data}_{variant.replace('+', '-')}_s{seed}"


def command(data: str, variant: str, seed: int, output: Path, iterations: int) -> list[str]:
    sets = [f"seed={seed}", f"data.name={data}", f"attack.iterations={iterations}"]
    sets += VARIANTS[variant]
    gradleak = Path(sys.executable).with_name("gradleak")
    args = [str(gradleak), "run", str(CONFIG), "-o", str(output), "--overwrite"]
    return args + [part for s in sets for part in ("--set", s)]


def run_cells(cells: list[tuple[str, str, int]], out: Path, jobs: int, iterations: int) -> None:
    """Every cell without a finished folder, ``jobs`` at a time, each on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    todo = [c for c in cells if not (folder(out, *c) / "metrics.json").exists()]
    running: list[tuple[subprocess.Popen[bytes], tuple[str, str, int]]] = []
    while todo or running:
        while todo and len(running) < jobs:
            cell = todo.pop(0)
            path = folder(out, *cell)
            with (out / f"{path.name}.log").open("wb") as log:  # the child keeps its copy
                proc = subprocess.Popen(
                    command(*cell, path, iterations), stdout=log, stderr=log, env=env
                )
            running.append((proc, cell))
        time.sleep(2)
        for proc, cell in [r for r in running if r[0].poll() is not None]:
            running.remove((proc, cell))
            if proc.returncode != 0:
                print(f"{cell}: exit {proc.returncode}, see {folder(out, *cell).name}.log")


def summary(cells: list[tuple[str, str, int]], out: Path) -> None:
    print("| data | variant | seeds | PSNR (dB) | SSIM | per seed (dB) | label acc. |")
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict]] = {}
    for data, variant, seed in cells:
        path = folder(out, data, variant, seed) / "metrics.json"
        if path.exists():
            groups.setdefault((data, variant), []).append(json.loads(path.read_text()))
    for (data, variant), rows in groups.items():
        psnr = interval([r["psnr_mean"] for r in rows])
        ssim = interval([r["ssim_mean"] for r in rows])
        seeds = ", ".join(f"{r['seed']}: {r['psnr_mean']:.2f}" for r in rows)
        labels = [r["label_accuracy"] for r in rows if r.get("label_accuracy") is not None]
        accuracy = f"{sum(labels) / len(labels):.3f}" if labels else "—"
        print(
            f"| {data} | {variant} | {len(rows)} | {psnr[0]:.2f} ± {psnr[1]:.2f} | "
            f"{ssim[0]:.3f} ± {ssim[1]:.3f} | {seeds} | {accuracy} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["cifar10", "cifar100"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--iterations",
        type=int,
        default=300,
        help="Per stage (the shipped 300); give each budget its own --out folder.",
    )
    parser.add_argument("--summary-only", action="store_true", help="Print what is there.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cells = [(d, v, s) for d in args.data for v in args.variants for s in args.seeds]
    if not args.summary_only:
        run_cells(cells, args.out, args.jobs, args.iterations)
    summary(cells, args.out)


if __name__ == "__main__":
    main()
