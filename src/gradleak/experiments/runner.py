"""Run one experiment: scenario -> attack -> scoring -> outputs.

Outputs of a run folder (the user-facing contract): ``config.yaml`` (the effective config:
every default the attack chose written in, so rerunning the file is the same run),
``metrics.json`` (which repeats the effective attack section under ``effective``), the picture
(``reconstruction.png`` for images, ``reconstruction.html`` for text; ``experiments.outcomes``)
and ``tensors.pt`` (reconstruction, ground truth, labels). Outputs are written even when the attack diverged or was interrupted, so nothing
computed is lost.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradleak.attacks.base import Attack, ProgressCallback, Reconstruction
from gradleak.config import ExperimentConfig, dump_config
from gradleak.experiments import run_folder
from gradleak.experiments.outcomes import OUTCOMES, Outcome
from gradleak.experiments.preflight import build_attack, preflight
from gradleak.experiments.threats import THREATS, Scenario
from gradleak.runtime import isolated_runtime, resolve_device, signals_held

RECORDED_EXTRA = ("batched_runs", "revived_images", "regroup_swaps", "stopped_on_plateau")
"""What an attack did that changes how its result reads, copied from ``Reconstruction.extra``
into ``metrics.json``: optimised in one batch with other runs' attacks, images redrawn after a
stage (``attacks.revival``), pairs moved between peers (``attacks.regrouping``), stopped early
on a plateau of the loss (``attacks.plateau``)."""


def build_metrics(
    config: ExperimentConfig,
    scenario: Scenario,
    recon: Reconstruction,
    outcome: Outcome,
    wall_seconds: float,
) -> dict[str, Any]:
    labels_given = config.attack.labels == "given"
    metrics: dict[str, Any] = {
        "attack": config.attack.name,
        "threat": config.threat.attacker,
        "modality": scenario.target.modality,
        **outcome.scores,
        "iterations": recon.iterations,
        "wall_seconds": round(wall_seconds, 3),
        "seed": config.seed,
        "best_loss": recon.best_loss,
        "diverged": recon.diverged,
        "interrupted": recon.interrupted,
        "scenario": scenario.summary,
        "trace": recon.trace,
        "effective": {"attack": config.attack.model_dump(mode="json")},
    }
    if labels_given:
        metrics["label_accuracy"] = None
    for key in RECORDED_EXTRA:
        if key in recon.extra:
            metrics[key] = recon.extra[key]
    return metrics


def write_outputs(
    output_dir: Path,
    config: ExperimentConfig,
    scenario: Scenario,
    recon: Reconstruction,
    outcome: Outcome,
    metrics: dict[str, Any],
) -> None:
    """Write the run folder, ``metrics.json`` last (see ``run_folder``); a failed write (a full
    disk) is one OutputError line that says what was kept."""
    tensors = io.BytesIO()
    torch.save(
        {
            "reconstruction": recon.images.detach().cpu(),
            "reconstruction_labels": None if recon.labels is None else recon.labels.cpu(),
            "truth": scenario.truth.images.cpu(),
            "truth_labels": scenario.truth.labels.cpu(),
        },
        tensors,
    )
    name = "config.yaml"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        run_folder.write_atomic(output_dir / name, dump_config(config).encode())
        for name, draw in outcome.pictures.items():
            with run_folder.replacing(output_dir / name) as picture:
                draw(picture)
        name = "tensors.pt"
        run_folder.write_atomic(output_dir / name, tensors.getvalue())
        name = "metrics.json"
        text = json.dumps(metrics, indent=2, default=float)
        run_folder.write_atomic(output_dir / name, text.encode())
    except OSError as exc:
        raise run_folder.output_failure(output_dir, name, exc) from None


def run_experiment(
    config: ExperimentConfig,
    output_dir: Path,
    progress: bool = False,
    callback: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run ``config`` end to end, write its outputs to ``output_dir``, return its metrics.

    The torch thread count and the global generators are set for the run and restored after
    it (:func:`~gradleak.runtime.isolated_runtime`): a library call leaves the process as it
    found it. Everything that can be refused without data is refused first
    (:func:`~gradleak.experiments.preflight.preflight`), and the effective config is the one
    run and written.
    """
    with isolated_runtime(config.threads, config.seed):
        return _run(config, output_dir, progress, callback)


@dataclass
class PreparedRun:
    """A run up to its attack: the effective config, the attack built and checked against the
    threat's capabilities, and the scenario (the simulated deployment and its target)."""

    config: ExperimentConfig
    attack: Attack
    scenario: Scenario
    started: float


def prepare_run(config: ExperimentConfig, output_dir: Path) -> PreparedRun:
    """Everything before the attack; inside the run's :func:`isolated_runtime`."""
    started = time.perf_counter()
    config = preflight(config)
    attack = build_attack(config)
    device = resolve_device(config.device)
    run_folder.check_writable(output_dir)  # a full or read-only disk fails now, not after
    scenario = THREATS.get(config.threat.attacker)(config, device)
    attack.check(scenario.target.capabilities)
    return PreparedRun(config, attack, scenario, started)


def finish_run(run: PreparedRun, recon: Reconstruction, output_dir: Path) -> dict[str, Any]:
    """Score ``recon`` and write the run folder, with Ctrl-C held: the attack is done."""
    with signals_held():
        outcome = OUTCOMES.get(run.scenario.target.modality)(run.config, run.scenario, recon)
        elapsed = time.perf_counter() - run.started
        metrics = build_metrics(run.config, run.scenario, recon, outcome, elapsed)
        write_outputs(output_dir, run.config, run.scenario, recon, outcome, metrics)
    return metrics


def _run(
    config: ExperimentConfig,
    output_dir: Path,
    progress: bool,
    callback: ProgressCallback | None,
) -> dict[str, Any]:
    run = prepare_run(config, output_dir)
    target = run.scenario.target
    if progress and callback is None:
        from gradleak.experiments.progress import attack_progress

        with attack_progress(run.attack.total_iterations()) as bar:
            recon = run.attack.reconstruct(target, bar)
    else:
        recon = run.attack.reconstruct(target, callback)
    return finish_run(run, recon, output_dir)
