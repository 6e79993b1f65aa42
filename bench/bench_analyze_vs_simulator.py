"""Does ``gradleak analyze`` predict what the simulator measures? Krum steering, per seed.

For each data set and seed of configs/malicious_client.yaml (8 clients × 4 images, Krum, one
malicious client aiming at client 1), compares the victim's share of the aggregate that
``analyze`` predicts with three geometry sources against the share the simulator measures
(``threat.attacker=malicious_peer``; only the federation runs, no inversion, so it is cheap):

- ``isotropic``: the old synthetic model (``analyze --rule krum``, 50 trials at that seed);
- ``calibrated``: 50 synthetic rounds with the quantities (:class:`Shape`) measured on the
  seed's real honest round: spread / mean norm, the dimension the spread lives in (from how much
  pairwise distances vary), the victim's centrality rank and the attacker's estimate error;
- ``recorded``: the seed's real honest round itself (``analyze --geometry recorded``), with the
  estimate the malicious client builds from what it is handed.

A prediction "steers" when its share is above 0.5; agreement is the fraction of seeds where that
matches the simulator. Then the coordinate-wise median (``analyze --geometry recorded`` with
``median``): how far one (three) attackers moved the aggregate from the honest median, in
ranks, and the victim's share of coordinates, against the simulator's.

Design note: the calibrated model's victim-rank parameter was added after looking at CIFAR-10
seeds 0–7 (the isotropic victim offset alone left the model near 0.5 everywhere); seeds from 8
on and the second data set were not looked at before the figures were printed.

    .venv/bin/python bench/bench_analyze_vs_simulator.py            # CIFAR-10 + CelebA, 16 seeds
    .venv/bin/python bench/bench_analyze_vs_simulator.py --quick    # CIFAR-10, seeds 0-4
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from gradleak.config import ExperimentConfig, load_config
from gradleak.experiments.geometry import SyntheticGeometry
from gradleak.experiments.malicious_analysis import Setting, Survival, analyse
from gradleak.experiments.recorded_geometry import RecordedGeometry, recorded_round
from gradleak.experiments.threats.malicious import malicious_peer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "malicious_client.yaml"
LABELS = {"celeba": "client"}  # as bench_malicious_client.py
DRAWS = 50
CPU = torch.device("cpu")


def config_for(
    dataset: str, rule: str, seed: int, extra: list[str] | None = None
) -> ExperimentConfig:
    return load_config(CONFIG, [
        f"data.name={dataset}", f"data.labels={LABELS.get(dataset, 'dataset')}",
        f"defense.aggregator.name={rule}", f"seed={seed}", *(extra or []),
    ])  # fmt: skip


def measured(config: ExperimentConfig) -> dict[str, Any]:
    """The simulator's first attacked round: the victim's share, whether Krum picked it."""
    first = malicious_peer(config, CPU).summary["stealth"][0]
    return first


def krum_row(dataset: str, seed: int) -> dict[str, Any]:
    config = config_for(dataset, "krum", seed)
    setting = Setting("krum", 8, 1)
    start = time.perf_counter()
    sim = measured(config)
    real = recorded_round(config, CPU)
    shape = real.shape()
    recorded = analyse(setting, "malicious", 1, seed, RecordedGeometry(config))
    calibrated = analyse(setting, "malicious", DRAWS, seed, shape.synthetic())
    isotropic = analyse(setting, "malicious", DRAWS, seed, SyntheticGeometry())
    return {
        "dataset": dataset, "seed": seed, "measured": sim["victim_contribution"],
        "recorded": recorded.victim_weight, "calibrated": calibrated.victim_weight,
        "isotropic": isotropic.victim_weight, "shape": vars(shape),
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip


def interval(values: list[float]) -> str:
    """Mean ± a normal 95 % half-width over seeds."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return f"{mean:.3f} ± {1.96 * sd / math.sqrt(n):.3f}"


def agreement(rows: list[dict[str, Any]], source: str) -> str:
    hits = sum((r[source] > 0.5) == (r["measured"] > 0.5) for r in rows)
    return f"{hits}/{len(rows)}"


def print_krum(rows: list[dict[str, Any]], design: set[tuple[str, int]]) -> None:
    print(f"{'data':8} {'seed':>4} {'measured':>8} {'recorded':>8} {'calibr.':>8} "
          f"{'isotrop.':>8} {'spread':>6} {'rank':>4} {'v.rank':>6} {'est.err':>7} {'wall s':>6}")  # fmt: skip
    for r in rows:
        s = r["shape"]
        mark = "*" if (r["dataset"], r["seed"]) in design else " "
        print(f"{r['dataset']:8} {r['seed']:>3}{mark} {r['measured']:8.3f} {r['recorded']:8.3f} "
              f"{r['calibrated']:8.3f} {r['isotropic']:8.3f} {s['spread']:6.2f} {s['rank']:4d} "
              f"{s['victim_rank']:6d} {s['estimate_error']:7.2f} {r['wall_s']:6.1f}")  # fmt: skip
    print("(* : seeds looked at while designing the calibrated model)")
    groups = {"all": rows, "held out": [r for r in rows if (r["dataset"], r["seed"]) not in design]}
    for dataset in sorted({r["dataset"] for r in rows}):
        groups[dataset] = [r for r in rows if r["dataset"] == dataset]
    for name, group in groups.items():
        if not group:
            continue
        print(f"{name:9} n={len(group):2d}  victim share mean ±95%: measured "
              f"{interval([r['measured'] for r in group])}, recorded "
              f"{interval([r['recorded'] for r in group])}, calibrated "
              f"{interval([r['calibrated'] for r in group])}, isotropic "
              f"{interval([r['isotropic'] for r in group])}; per-seed agreement: recorded "
              f"{agreement(group, 'recorded')}, calibrated {agreement(group, 'calibrated')}, "
              f"isotropic {agreement(group, 'isotropic')}")  # fmt: skip


def survival(s: Survival) -> str:
    shift = "-" if s.rank_shift is None else f"{s.rank_shift:.2f}"
    return f"coords {s.victim_coordinates:.3f} shift {shift}"


def median_rows(dataset: str, seeds: list[int]) -> None:
    """One and three attackers against the median on the recorded real rounds, and the
    simulator's measured share of the victim's coordinates."""
    cases = {1: [], 3: ["threat.num_malicious=3", "threat.victim=4"]}
    for f, extra in cases.items():
        config = config_for(dataset, "median", seeds[0], extra)
        setting = Setting("median", 8, f)
        source = RecordedGeometry(config)
        honest = analyse(setting, "honest", len(seeds), seeds[0], source)
        malicious = analyse(setting, "malicious", len(seeds), seeds[0], source)
        sims = [measured(config_for(dataset, "median", s, extra))["victim_source_fraction"]
                for s in seeds]  # fmt: skip
        print(f"median {dataset} f={f} seeds {seeds[0]}-{seeds[-1]}: analyze honest "
              f"{survival(honest)} | analyze malicious {survival(malicious)} | simulator "
              f"malicious coords {interval(sims)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CIFAR-10, seeds 0-4")
    parser.add_argument("--seeds", type=int, default=16, help="seeds 0..N-1")
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "celeba"])
    parser.add_argument("--jsonl", type=Path, help="append the Krum rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(5 if args.quick else args.seeds))
    datasets = ["cifar10"] if args.quick else args.datasets
    design = {("cifar10", s) for s in range(8)}
    rows = [krum_row(d, s) for d in datasets for s in seeds]
    if args.jsonl:
        with args.jsonl.open("a") as out:
            for r in rows:
                out.write(json.dumps(r) + "\n")
    print("Krum, N=8, f=1: the victim's share of the aggregate, predicted vs measured")
    print_krum(rows, design)
    print()
    for dataset in datasets:
        median_rows(dataset, seeds)


if __name__ == "__main__":
    main()
