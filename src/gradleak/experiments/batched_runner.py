"""Run several experiments in one worker, their compatible attacks optimised as one batch.

Many small attacks (one model, one image, seeds 0..N) each spend most of their time in fixed
per-operation overhead; the same trials stacked into one ``vmap``-ped computation do the work
in a fraction of the time (``attacks.batched_runs``). This runs each experiment exactly as
:func:`~gradleak.experiments.runner.run_experiment` would, in three steps:

1. inside each run's own :func:`~gradleak.runtime.isolated_runtime` (its seed, its threads):
   preflight, simulate, build the target, and ask the attack for its trials
   (:meth:`batch_plan`, drawn as the attack alone draws them). A run whose attack cannot hand
   over its trials is attacked, scored and written right there;
2. the plans that differ only in their tensors (:func:`attacks.batched_runs.group_plans`)
   are optimised together, each run keeping the restart it would have chosen alone;
3. inside each run's runtime again: post-processing, scoring, the run folder.

So each run folder is the run its ``config.yaml`` reproduces alone, up to the last bits of
batched kernels; ``metrics.json`` says how many runs shared its batch (``batched_runs``), and
its ``wall_seconds`` runs from its preparation to its folder, so it counts the whole batch's
optimisation (and the preparation of the runs after it), which the run waited for. A run
that fails in step 1 or 3 fails alone; a failure of the shared optimisation fails its group.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradleak.attacks.batched_runs import BatchableAttack, TrialPlan, group_plans, run_plans
from gradleak.attacks.optim import RestartResult
from gradleak.config import ExperimentConfig
from gradleak.experiments.runner import PreparedRun, finish_run, prepare_run
from gradleak.runtime import isolated_runtime


@dataclass
class BatchedRunResult:
    """One run's result: its metrics, or the exception that ended it and its traceback."""

    metrics: dict[str, Any] | None = None
    error: Exception | None = None
    traceback: str = ""
    seconds: float = 0.0


@dataclass
class _Waiting:
    index: int
    run: PreparedRun
    plan: TrialPlan


def _failed(exc: Exception, began: float) -> BatchedRunResult:
    return BatchedRunResult(
        error=exc, traceback=traceback.format_exc(), seconds=time.perf_counter() - began
    )


def _prepare(config: ExperimentConfig, output_dir: Path) -> tuple[PreparedRun, TrialPlan | None]:
    run = prepare_run(config, output_dir)
    attack = run.attack
    plan = attack.batch_plan(run.scenario.target) if isinstance(attack, BatchableAttack) else None
    return run, plan


def run_experiments_batched(
    configs: Sequence[ExperimentConfig], output_dirs: Sequence[Path]
) -> list[BatchedRunResult]:
    """Run every config into its folder (see the module docstring); one result per run, in
    order. Exceptions are caught per run and returned, never raised."""
    results = [BatchedRunResult() for _ in configs]
    waiting: list[_Waiting] = []
    for index, (config, output_dir) in enumerate(zip(configs, output_dirs, strict=True)):
        began = time.perf_counter()
        try:
            with isolated_runtime(config.threads, config.seed):
                run, plan = _prepare(config, output_dir)
                if plan is None:
                    recon = run.attack.reconstruct(run.scenario.target)
                    results[index].metrics = finish_run(run, recon, output_dir)
                    results[index].seconds = time.perf_counter() - began
                    continue
            waiting.append(_Waiting(index, run, plan))
        except Exception as exc:
            results[index] = _failed(exc, began)
    for members in group_plans([w.plan for w in waiting]):
        group = [waiting[i] for i in members]
        _run_group(group, results, output_dirs)
    return results


def _run_group(
    group: list[_Waiting], results: list[BatchedRunResult], output_dirs: Sequence[Path]
) -> None:
    """Optimise one group's plans together, then finish each run in its own runtime."""
    first = group[0].run.config
    began = time.perf_counter()
    try:
        with isolated_runtime(first.threads, first.seed):
            chosen: list[RestartResult] = run_plans([w.plan for w in group])
    except Exception as exc:
        for waiting in group:
            results[waiting.index] = _failed(exc, began)
        return
    for waiting, best in zip(group, chosen, strict=True):
        config = waiting.run.config
        try:
            with isolated_runtime(config.threads, config.seed):
                recon = waiting.plan.finish(best)
                recon.extra["batched_runs"] = len(group)
                metrics = finish_run(waiting.run, recon, output_dirs[waiting.index])
            results[waiting.index] = BatchedRunResult(
                metrics, seconds=time.perf_counter() - waiting.run.started
            )
        except Exception as exc:
            results[waiting.index] = _failed(exc, waiting.run.started)
