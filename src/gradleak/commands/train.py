"""``gradleak train``: train the configured federation and report its test accuracy per round.

It is the check that the simulated FL really learns (an attack on a federation that does not
learn says little), and it reports the privacy spent (epsilon) when DP is on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gradleak.cli_app import DeviceOption, OutputOption, SetOption, app, console
from gradleak.config import ExperimentConfig, dump_config, load_config
from gradleak.interrupts import interrupt_exits


def train_federation(config: ExperimentConfig, progress: bool = False) -> dict[str, Any]:
    """Train for ``federation.rounds`` rounds; the metrics ``gradleak train`` writes. Threads
    and generators are restored afterwards (``gradleak.runtime.isolated_runtime``)."""
    from gradleak.runtime import isolated_runtime

    with isolated_runtime(config.threads, config.seed):
        return _train(config, progress)


def _train(config: ExperimentConfig, progress: bool) -> dict[str, Any]:
    from gradleak.experiments.threats import build_model_for
    from gradleak.fl.build import build_federation
    from gradleak.fl.dp_training import reported_epsilon
    from gradleak.fl.evaluation import train_and_test
    from gradleak.runtime import resolve_device

    started = time.perf_counter()
    train, test, test_source = train_and_test(config)
    model = build_model_for(config, train, resolve_device(config.device))
    federation = build_federation(config, train, model)
    accuracy: list[float] = []
    with Progress(
        TextColumn("[bold]round"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
    ) as bar:
        task = bar.add_task("", total=config.federation.rounds)
        for _ in range(config.federation.rounds):
            federation.run_round()
            accuracy.append(federation.evaluate(test.images, test.labels))
            bar.update(task, advance=1, description=f"test accuracy {accuracy[-1]:.3f}")
    min_size = min(len(part) for part in federation.parts)
    total_rounds = config.federation.pretrain_rounds + config.federation.rounds
    epsilon, unit = reported_epsilon(config, federation.rules.defenses, min_size, total_rounds)
    return {
        "test_accuracy": accuracy,
        "final_accuracy": accuracy[-1],
        "epsilon": epsilon,
        "epsilon_unit": unit,
        "delta": _delta(config) if epsilon is not None else None,
        "test_source": test_source,
        "num_test_images": len(test),
        "rounds": config.federation.rounds,
        "wall_seconds": time.perf_counter() - started,
        "seed": config.seed,
    }


def _delta(config: ExperimentConfig) -> float | None:
    deltas = [d.delta for d in config.defense.client if d.delta is not None]
    if deltas:
        return min(deltas)
    return config.defense.dp_sgd.delta if config.defense.dp_sgd is not None else None


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    set_: SetOption = None,
    output: OutputOption = None,
    device: DeviceOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run in the --output folder.")
    ] = False,
) -> None:
    """Train the federation; write config.yaml and metrics.json (test accuracy per round, epsilon)."""
    overrides = [*(set_ or []), *([f"device={device}"] if device else [])]
    from gradleak.experiments import run_folder
    from gradleak.footprint import check_fits_in_memory

    resolved = load_config(config, overrides)
    check_fits_in_memory(resolved)
    folder = output or Path("runs") / f"train-{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_folder.prepare_run_folder(folder, overwrite)
    with interrupt_exits("before training finished; nothing was written"):
        metrics = train_federation(resolved, progress=True)
    name = "config.yaml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        run_folder.write_atomic(folder / name, dump_config(resolved).encode())
        name = "metrics.json"
        run_folder.write_atomic(folder / name, json.dumps(metrics, indent=2).encode())
    except OSError as exc:
        raise run_folder.output_failure(folder, name, exc) from None
    eps = "" if metrics["epsilon"] is None else f", epsilon {metrics['epsilon']:.3g}"
    console.print(
        f"final test accuracy {metrics['final_accuracy']:.3f} on {metrics['num_test_images']} "
        f"images ({metrics['test_source']}){eps}; outputs in {folder}"
    )
