"""The maliciously curious client's table: honest curious vs malicious, per rule, with/without DP.

For each data set, aggregation rule and client-DP setting, runs (a) the honest curious client
(``threat.attacker=peer``, attack ``curious_client``) and (b) the maliciously curious client
(``malicious_peer``, ``malicious_client``) on configs/malicious_client.yaml (8 clients × 4
images, 32×32; CelebA faces labelled by client, ``data.labels=client``), and prints matched
PSNR/SSIM on the scored (victims') images with the relative change against (a) under the mean
without DP, the victim's share of the aggregate, whether the malicious upload was selected /
inside the window, the accuracy drop, seeds and wall times.

    .venv/bin/python bench/bench_malicious_client.py --iterations 100 --datasets cifar10 celeba
    # only some cells, appended to a JSONL file; then the merged markdown table:
    .venv/bin/python bench/bench_malicious_client.py --rules median --dps client \
        --attackers malicious --jsonl bench/results/malicious_client.jsonl
    .venv/bin/python bench/bench_malicious_client.py --table bench/results/malicious_client.jsonl

Attacker ``malicious-joint`` is the malicious client with ``threat.strategy=joint``;
``malicious-await`` keeps steering Krum for up to 30 rounds and attacks the first round whose
exposed update carries the victim's labels (``threat.await_victim``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from gradleak.config import load_config
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.threats.malicious import malicious_peer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "malicious_client.yaml"
RULES = ["mean", "krum", "multikrum", "median", "trimmed_mean", "bulyan"]
DP_SETTINGS = {"none": None, "client": (4.0, 0.0005)}
"""Client DP per column: (clip norm C, noise multiplier); ``--dp-clip``/``--dp-noise`` change it."""


def dp_override(dp: str) -> str:
    setting = DP_SETTINGS[dp]
    if setting is None:
        return "defense.client=[]"
    clip, noise = setting
    return f"defense.client=[{{name: clip_noise, clip_norm: {clip}, noise_multiplier: {noise}}}]"


ATTACKERS = {
    "honest": ["threat.attacker=peer", "attack.name=curious_client"],
    "malicious": ["threat.attacker=malicious_peer", "attack.name=malicious_client"],
    "malicious-await": [
        "threat.attacker=malicious_peer",
        "attack.name=malicious_client",
        "threat.await_victim=true",
        "federation.rounds=30",
    ],
    "malicious-joint": [
        "threat.attacker=malicious_peer",
        "attack.name=malicious_client",
        "threat.strategy=joint",
    ],
}
LABELS = {"celeba": "client"}
"""data.labels per data set: the CelebA subset has one label for all faces, which leaves the
attacker's relabelled estimate of the victim without direction; one identity per client gives
it one."""
BASE = ("mean", "none", "honest")
HEADER = (
    f"{'data':8} {'rule':12} {'dp':6} {'attacker':15} {'PSNR':>6} {'SSIM':>6} {'dPSNR%':>7} "
    f"{'dSSIM%':>7} {'n':>3} {'victim':>6} {'malsel':>6} {'accdrop':>7} {'wall s':>6}"
)


def run_cell(
    dataset: str,
    rule: str,
    dp: str,
    attacker: str,
    iterations: int,
    seed: int,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    overrides = [
        f"data.name={dataset}",
        f"data.labels={LABELS.get(dataset, 'dataset')}",
        f"defense.aggregator.name={rule}",
        dp_override(dp),
        "defense.aggregator.beta=0.25",
        f"attack.iterations={iterations}",
        f"seed={seed}",
        *ATTACKERS[attacker],
        *(extra or []),
    ]
    config = load_config(CONFIG, overrides)
    with tempfile.TemporaryDirectory() as folder:
        metrics = run_experiment(config, Path(folder))
    scenario = metrics["scenario"]
    stealth = scenario.get("stealth", [{}])
    attacked = scenario.get("observed_rounds", [0])[0]  # await_victim attacks a later round
    first = next((s for s in stealth if s.get("round") == attacked), stealth[0])
    passed = [s.get("malicious_selected", s.get("malicious_in_window")) for s in stealth]
    return {
        "dataset": dataset,
        "labels": config.data.labels,
        "rule": rule,
        "dp": dp,
        "dp_setting": DP_SETTINGS[dp],
        "overrides": extra or [],
        "attacker": attacker,
        "seed": seed,
        "iterations": iterations,
        "psnr": metrics["psnr_mean"],
        "ssim": metrics["ssim_mean"],
        "scored": metrics["num_scored_images"],
        "wall_s": metrics["wall_seconds"],
        "victim_share": first.get("victim_contribution"),
        "wrong_beliefs": sum(
            bool(s.get("attacker_sees_victim")) and not s.get("victim_selected") for s in stealth
        ),
        "belief_rounds": sum(s.get("attacker_sees_victim") is not None for s in stealth),
        "mal_selected": None if None in passed else sum(passed) / len(passed),
        "acc_drop": scenario.get("accuracy_drop"),
    }


def stealth_row(rule: str, rounds: int, seed: int, dataset: str = "cifar10") -> dict[str, Any]:
    """The malicious client acting for ``rounds`` rounds (CIFAR-10, no DP), no inversion: how often
    its uploads passed the rule, the victim's mean share, and the global model's test accuracy
    against the same federation without it (accuracy after one round is chance, so the inversion
    cells above cannot show this)."""
    config = load_config(
        CONFIG,
        [
            f"data.name={dataset}",
            f"data.labels={LABELS.get(dataset, 'dataset')}",
            f"defense.aggregator.name={rule}",
            "defense.aggregator.beta=0.25",
            f"seed={seed}",
            f"federation.rounds={rounds}",
            *ATTACKERS["malicious"],
        ],
    )
    start = time.perf_counter()
    summary = malicious_peer(config, torch.device("cpu")).summary
    stealth = summary["stealth"]
    passed = [s.get("malicious_selected", s.get("malicious_in_window")) for s in stealth]
    return {
        "rule": rule,
        "rounds": rounds,
        "seed": seed,
        "passed": None if None in passed else sum(passed) / len(passed),
        "victim_share": sum(s["victim_contribution"] for s in stealth) / len(stealth),
        "victim_selected": sum(bool(s.get("victim_selected")) for s in stealth) / len(stealth),
        "acc_attacked": summary["test_accuracy_attacked"],
        "acc_honest": summary["test_accuracy_honest"],
        "acc_drop": summary.get("accuracy_drop"),
        "test_images": summary["test_images"],
        "wall_s": round(time.perf_counter() - start, 1),
    }


def stealth_table(rounds: int, seeds: list[int], rules: list[str], dataset: str) -> None:
    """One row per rule, averaged over ``seeds`` (500 test images give about ±1.5 points of
    noise per run, so one seed cannot show a 2-point difference)."""
    print(f"\nStealth over {rounds} rounds ({dataset}, no DP, seeds {seeds}, means):\n")
    print(
        "| rule | malicious upload passed | victim share | victim selected | test acc. with attacker "
        "| without | drop (points) | drop per seed | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rule in rules:
        runs = [stealth_row(rule, rounds, seed, dataset) for seed in seeds]

        def mean(key: str, rows: list[dict[str, Any]] = runs) -> float | None:
            values = [r[key] for r in rows]
            return None if None in values else sum(values) / len(values)

        acc = mean("acc_attacked")
        if acc is None:  # no test set (faces labelled by client)
            tail = "- | - | - | -"
        else:
            drops = " ".join(f"{100 * r['acc_drop']:+.1f}" for r in runs)
            tail = (
                f"{acc:.3f} | {mean('acc_honest'):.3f} | {100 * (mean('acc_drop') or 0.0):+.1f} | "
                f"{drops}"
            )
        print(
            f"| {rule} | {fmt(mean('passed'), '.2f')} | {mean('victim_share'):.2f} | "
            f"{mean('victim_selected'):.2f} | {tail} | {mean('wall_s'):.1f} |",
            flush=True,
        )


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def relative(row: dict[str, Any], base: dict[str, Any] | None) -> dict[str, float | None]:
    return {k: 100 * (row[k] - base[k]) / abs(base[k]) if base else None for k in ("psnr", "ssim")}


def line(row: dict[str, Any], base: dict[str, Any] | None) -> str:
    rel = relative(row, base)
    return (
        f"{row['dataset']:8} {row['rule']:12} {row['dp']:6} {row['attacker']:15} {row['psnr']:6.2f} "
        f"{row['ssim']:6.3f} {fmt(rel['psnr'], '+7.1f')} {fmt(rel['ssim'], '+7.1f')} {row['scored']:3d} "
        f"{fmt(row['victim_share'], '6.2f')} {fmt(row['mal_selected'], '6.2f')} "
        f"{fmt(row['acc_drop'], '+7.3f')} {row['wall_s']:6.1f}"
    )


def load_rows(paths: list[Path]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """JSONL rows by (data set, rule, DP, attacker, seed); a later row replaces an earlier one."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in paths:
        for text in path.read_text().splitlines():
            if text.strip():
                row = json.loads(text)
                rows[(row["dataset"], row["rule"], row["dp"], row["attacker"], row["seed"])] = row
    return rows


def table(paths: list[Path]) -> None:
    """Merge JSONL rows (a later row replaces an earlier one of the same cell) and print them as
    markdown, relative changes against each data set's mean / no DP / honest row."""
    rows = load_rows(paths)
    order = {r: i for i, r in enumerate(RULES)}
    print(
        "| data | rule | DP | attacker | PSNR | SSIM | ΔPSNR % | ΔSSIM % | scored | victim share "
        "| mal. passed | acc. drop | seed | iters | wall s |"
    )
    print("|" + "---|" * 15)
    for key in sorted(rows, key=lambda k: (k[0], order.get(k[1], 99), k[2] != "none", k[3], k[4])):
        row = rows[key]
        base = rows.get((row["dataset"], *BASE, row["seed"]))
        rel = relative(row, base)
        print(
            f"| {row['dataset']} | {row['rule']} | {row['dp']} | {row['attacker']} | {row['psnr']:.2f} | "
            f"{row['ssim']:.3f} | {fmt(rel['psnr'], '+.1f')} | {fmt(rel['ssim'], '+.1f')} | {row['scored']} | "
            f"{fmt(row['victim_share'], '.2f')} | {fmt(row['mal_selected'], '.2f')} | "
            f"{fmt(row['acc_drop'], '+.3f')} | {row['seed']} | {row.get('iterations', '-')} | {row['wall_s']:.1f} |"
        )


CLAIM_CELLS = [
    ("mean", "none", "honest"),
    ("mean", "client", "honest"),
    ("krum", "none", "honest"),
    ("krum", "none", "malicious"),
    ("krum", "client", "honest"),
    ("krum", "client", "malicious"),
    ("median", "none", "honest"),
    ("median", "none", "malicious"),
]
"""The cells behind the paper's claim (+10-15 % under Krum, Median and client DP): each rule's
honest and malicious attacker, and the honest attacker under the plain mean, the honest client's
best case and the table's reference."""


def parse_cell(text: str) -> tuple[str, str, str]:
    """``rule/dp/attacker`` from the command line, checked against the known names."""
    parts = tuple(text.split("/"))
    if len(parts) != 3 or parts[0] not in RULES or parts[1] not in DP_SETTINGS:
        raise argparse.ArgumentTypeError(f"a cell is rule/dp/attacker, got {text!r}")
    if parts[2] not in ATTACKERS:
        raise argparse.ArgumentTypeError(f"unknown attacker {parts[2]!r}")
    return parts[0], parts[1], parts[2]


def interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided Student-t interval over seeds (0 for one seed):
    with 5-8 seeds the normal approximation would understate the uncertainty."""
    from scipy import stats

    data = torch.tensor(values, dtype=torch.float64)
    if len(values) < 2:
        return float(data.mean()), 0.0
    sem = float(data.std()) / len(values) ** 0.5
    return float(data.mean()), float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * sem


def interval_summary(paths: list[Path], seeds: list[int] | None = None) -> None:
    """Per data set and cell, PSNR and SSIM as mean ± 95 % interval over seeds, and the change
    against the honest attacker under the mean *paired by seed* (the same federation, the same
    images): the interval of the mean of per-seed relative changes says whether +10 % holds."""
    rows = load_rows(paths)
    if seeds is not None:
        rows = {k: r for k, r in rows.items() if k[4] in seeds}
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for key, row in sorted(rows.items()):
        cells.setdefault(key[:4], []).append(row)
    order = {r: i for i, r in enumerate(RULES)}
    print(
        "| data | rule | DP | attacker | seeds | PSNR | SSIM | ΔPSNR % vs honest/mean | "
        "ΔSSIM % vs honest/mean | victim alone |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (dataset, rule, dp, attacker), group in sorted(
        cells.items(),
        key=lambda kv: (kv[0][0], order.get(kv[0][1], 99), kv[0][2] != "none", kv[0][3]),
    ):
        text = [f"| {dataset} | {rule} | {dp} | {attacker} | {len(group)}"]
        for key in ("psnr", "ssim"):
            mean, half = interval([r[key] for r in group])
            text.append(f"{mean:.3f} ± {half:.3f}" if key == "ssim" else f"{mean:.2f} ± {half:.2f}")
        for key in ("psnr", "ssim"):
            changes = []
            for r in group:
                base = rows.get((dataset, *BASE, r["seed"]))
                if base is not None and base is not r:
                    changes.append(100 * (r[key] - base[key]) / abs(base[key]))
            if changes:
                mean, half = interval(changes)
                text.append(f"{mean:+.1f} ± {half:.1f} ({len(changes)})")
            else:
                text.append("-")
        alone = sum(r.get("victim_share") == 1.0 for r in group)
        text.append("-" if rule == "mean" else f"{alone} of {len(group)}")
        print(" | ".join(text) + " |")


def spread(values: torch.Tensor) -> float:
    return float(values.std()) if len(values) > 1 else 0.0


def seed_summary(paths: list[Path]) -> None:
    """Per data set and cell, the mean over the seeds found in the JSONL files, the seeds'
    spread, and how often the victim was the whole aggregate (the steering worked)."""
    rows = load_rows(paths)
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for key, row in sorted(rows.items()):
        cells.setdefault(key[:4], []).append(row)
    print(
        "| data | rule | DP | attacker | seeds | PSNR mean ± sd | SSIM mean ± sd | victim alone "
        "| PSNR / SSIM when alone | wrong beliefs / rounds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (dataset, rule, dp, attacker), group in cells.items():
        psnr = torch.tensor([r["psnr"] for r in group])
        ssim = torch.tensor([r["ssim"] for r in group])
        judged = sum(r.get("belief_rounds", 0) for r in group)
        beliefs = f"{sum(r.get('wrong_beliefs', 0) for r in group)} / {judged}" if judged else "-"
        won = [r for r in group if r.get("victim_share") == 1.0]
        alone = len(won)
        when = (
            f"{sum(r['psnr'] for r in won) / alone:.2f} / {sum(r['ssim'] for r in won) / alone:.3f}"
            if alone
            else "-"
        )
        print(
            f"| {dataset} | {rule} | {dp} | {attacker} | {len(group)} | {float(psnr.mean()):.2f} ± "
            f"{spread(psnr):.2f} | {float(ssim.mean()):.3f} ± {spread(ssim):.3f} | "
            f"{alone if rule != 'mean' else '-'} of {len(group)} | {when} | {beliefs} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="run every cell for each (not --seed)"
    )
    parser.add_argument(
        "--cells",
        type=parse_cell,
        nargs="+",
        default=None,
        help="only these rule/dp/attacker cells (e.g. krum/none/malicious)",
    )
    parser.add_argument(
        "--claim", action="store_true", help="only the cells of the paper's claim (CLAIM_CELLS)"
    )
    parser.add_argument(
        "--intervals",
        type=Path,
        nargs="+",
        default=None,
        help="print means with 95%% intervals over seeds of these JSONL files and exit",
    )
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "celeba"])
    parser.add_argument("--rules", nargs="+", default=RULES, choices=RULES)
    parser.add_argument("--dps", nargs="+", default=list(DP_SETTINGS), choices=list(DP_SETTINGS))
    parser.add_argument("--dp-clip", type=float, default=DP_SETTINGS["client"][0])
    parser.add_argument("--dp-noise", type=float, default=DP_SETTINGS["client"][1])
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        help="an extra config override for every cell (repeatable)",
    )
    parser.add_argument(
        "--attackers", nargs="+", default=["honest", "malicious"], choices=list(ATTACKERS)
    )
    parser.add_argument("--jsonl", type=Path, default=None, help="also append each row here")
    parser.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        help="print the merged markdown table of these JSONL files and exit",
    )
    parser.add_argument(
        "--stealth-rounds",
        type=int,
        default=0,
        help="only the stealth table: the attacker acting for this many rounds",
    )
    parser.add_argument(
        "--stealth-seeds",
        type=int,
        default=3,
        help="seeds averaged in the stealth table (from --seed on)",
    )
    parser.add_argument(
        "--seed-summary",
        type=Path,
        nargs="+",
        default=None,
        help="print means over seeds of these JSONL files and exit",
    )
    args = parser.parse_args()
    if args.intervals:
        interval_summary(args.intervals, args.seeds)
        return
    if args.seed_summary:
        seed_summary(args.seed_summary)
        return
    if args.stealth_rounds:
        torch.set_num_threads(1)
        for dataset in args.datasets:
            stealth_table(
                args.stealth_rounds,
                list(range(args.seed, args.seed + args.stealth_seeds)),
                args.rules,
                dataset,
            )
        return
    if args.table:
        table(args.table)
        return
    torch.set_num_threads(1)
    DP_SETTINGS["client"] = (args.dp_clip, args.dp_noise)
    print(f"client DP: clip {args.dp_clip}, noise multiplier {args.dp_noise}; extra {args.extra}")
    print(f"load {os.getloadavg()[0]:.1f}, iterations {args.iterations}, seed {args.seed}")
    print(HEADER)
    cells = (CLAIM_CELLS if args.claim else args.cells) or [
        (rule, dp, attacker)
        for rule in args.rules
        for dp in args.dps
        for attacker in args.attackers
    ]
    for seed in args.seeds or [args.seed]:
        for dataset in args.datasets:
            run_cells(dataset, cells, args.iterations, seed, args.extra, args.jsonl)


def run_cells(
    dataset: str,
    cells: list[tuple[str, str, str]],
    iterations: int,
    seed: int,
    extra: list[str],
    jsonl: Path | None,
) -> None:
    """Run the cells of one data set and seed, printing each row as it ends and appending it to
    ``jsonl`` at once, so that a killed sweep keeps every finished cell."""
    base: dict[str, Any] | None = None
    for rule, dp, attacker in cells:
        start = time.perf_counter()
        row = run_cell(dataset, rule, dp, attacker, iterations, seed, extra)
        row["wall_s"] = round(time.perf_counter() - start, 1)
        row["load"] = round(os.getloadavg()[0], 1)
        if (rule, dp, attacker) == BASE:
            base = row
        print(line(row, base), flush=True)
        if jsonl is not None:
            with jsonl.open("a") as out:
                out.write(json.dumps({**row, "rel": relative(row, base)}) + "\n")


if __name__ == "__main__":
    main()
