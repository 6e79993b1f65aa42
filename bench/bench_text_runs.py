"""Text leakage through the whole pipeline (`gradleak run`): the server and the curious client.

Each shipped text config is run end to end (data from the gensim wheel, the WordPiece
tokeniser, the federation, the threat, the attack, ROUGE scoring against the true sentences)
for every text attack and several seeds, each seed drawing other sentences (``data.shuffle``).
Prints one row per (config, attack): ROUGE-1/2/L, token accuracy, exact-sentence rate and
label accuracy as mean ± standard deviation over the seeds, and the mean wall time.

    OMP_NUM_THREADS=1 python bench/bench_text_runs.py [--seeds 0 1 2] [--quick]

The server case is configs/text_tag.yaml (one sentence, FedSGD, untrained bert_tiny); the
curious client is configs/text_curious_client.yaml (4 clients × 2 sentences, client 0 attacks
its 3 peers' 6 sentences from the global models alone).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from gradleak.config import load_config
from gradleak.experiments.runner import run_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CASES = ("text_tag.yaml", "text_curious_client.yaml")
ATTACKS = ("tag", "lamp", "fedleak_text")
COLUMNS = (
    "rouge1_mean",
    "rouge2_mean",
    "rougeL_mean",
    "token_accuracy",
    "exact_sentence_rate",
    "label_accuracy",
)


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f}±{sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="one seed, a fifth of the budget")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    args = parser.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    print(f"seeds {seeds}; columns mean±sd over seeds")
    print(f"{'case':26} {'attack':13} " + " ".join(f"{c[:14]:>15}" for c in COLUMNS) + "   wall s")
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases:
            for attack in args.attacks:
                rows: dict[str, list[float]] = {c: [] for c in COLUMNS}
                walls = []
                for seed in seeds:
                    overrides = [f"attack.name={attack}", f"seed={seed}"]
                    config = load_config(CONFIGS / case, overrides)
                    if args.quick:
                        iterations = max(1, config.attack.iterations // 5)
                        config = config.model_copy(
                            update={
                                "attack": config.attack.model_copy(
                                    update={"iterations": iterations}
                                )
                            }
                        )
                    folder = Path(scratch) / f"{case}-{attack}-{seed}"
                    metrics = run_experiment(config, folder)
                    for column in COLUMNS:
                        if metrics.get(column) is not None:
                            rows[column].append(float(metrics[column]))
                    walls.append(float(metrics["wall_seconds"]))
                cells = " ".join(f"{spread(rows[c]):>15}" for c in COLUMNS)
                print(f"{case:26} {attack:13} {cells}   {statistics.fmean(walls):6.1f}", flush=True)


if __name__ == "__main__":
    main()
