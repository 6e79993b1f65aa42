"""Run functions for sweep tests whose runs must be slow, countable and free of torch work.

Imported by spawned workers by name (the tests put this folder on ``PYTHONPATH``), so it stays
a plain module without test functions. Each execution appends its run id to
``executions.log`` beside the run folders and leaves its worker's pid in the run folder.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from gradleak.config import ExperimentConfig

RUN_SECONDS_ENV = "GRADLEAK_TEST_RUN_SECONDS"


def counted_run(config: ExperimentConfig, output_dir: Path) -> dict[str, Any]:
    """Sleep ``$GRADLEAK_TEST_RUN_SECONDS`` (default 0.3 s) and log that this run executed."""
    (output_dir / "worker.pid").write_text(str(os.getpid()))
    time.sleep(float(os.environ.get(RUN_SECONDS_ENV, "0.3")))
    with open(output_dir.parent / "executions.log", "a") as log:
        log.write(f"{output_dir.name}\n")
    return {"psnr_mean": float(config.seed)}


def sweep_main(sweep_file: str, store: str, output: str, workers: int) -> None:
    """A sweep process running :func:`counted_run` (what the tests start and kill)."""
    from gradleak.experiments.backends import BackendOptions
    from gradleak.experiments.sweep import load_sweep
    from gradleak.experiments.sweep_run import run_sweep

    summary = run_sweep(
        load_sweep(Path(sweep_file)),
        Path(store),
        "local",
        BackendOptions(workers=workers),
        Path(output),
        run=counted_run,
    )
    print(summary.done, summary.failed, summary.skipped, summary.elsewhere)


if __name__ == "__main__":
    sweep_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
