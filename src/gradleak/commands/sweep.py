"""The ``sweep``, ``results`` and ``report`` commands, registered on the main typer app.

Heavy imports (torch, matplotlib, ray) happen inside the commands, so that ``gradleak --help``
stays fast. SIGTERM (``timeout``, Slurm, ``docker stop``) stops a sweep like Ctrl-C does: the
workers are stopped, every finished run stays in the store, and the exit status is 143.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from gradleak.cli_app import app, console

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread so that the sweep unwinds like on Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the sweep runs, then restore the handler."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


StoreOption = Annotated[Path, typer.Option("--store", help="Results store (SQLite file).")]
SweepNameOption = Annotated[
    str | None, typer.Option("--sweep", help="Only this sweep of the store (default: all).")
]


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML: base, grid, zip, set).")],
    store: StoreOption = Path("results.db"),
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Runs at once (default: CPUs).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="local, ray or slurm.")] = "local",
    address: Annotated[
        str,
        typer.Option(
            "--address", help="ray: auto or HOST:PORT; slurm: auto, or local/debug to try it."
        ),
    ] = "auto",
    cpus_per_run: Annotated[
        float | None,
        typer.Option("--cpus-per-run", help="CPUs per run (default: the sweep file's, else 1)."),
    ] = None,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(
            "--gpus-per-run", help="GPUs per run, e.g. 0.25 (default: the sweep file's, else 0)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run folders (default: runs/ by the store)."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also redo runs that failed before.")
    ] = False,
) -> None:
    """Run every cell of a sweep into a results store; rerun the same command to resume."""
    from gradleak.experiments.backends import BackendOptions
    from gradleak.experiments.backends.sizing import with_overrides
    from gradleak.experiments.sweep import load_sweep
    from gradleak.experiments.sweep_run import run_sweep

    plan = load_sweep(sweep_file)
    resources = with_overrides(plan.resources, cpus_per_run, gpus_per_run)
    options = BackendOptions(workers, address, resources, slurm=plan.slurm)
    console.print(f"sweep [bold]{plan.name}[/]: {len(plan.runs)} runs, backend {backend}")
    try:
        with _sigterm_unwinds():
            summary = run_sweep(
                plan,
                store,
                backend,
                options,
                output,
                retry_failed=retry_failed,
                progress=sys.stderr.isatty(),
            )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; finished runs are stored, rerun to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Terminated:
        console.print("[yellow]terminated; finished runs are stored, rerun to resume")
        raise typer.Exit(EXIT_TERMINATED) from None
    elsewhere = f", {summary.elsewhere} run by another sweep" if summary.elsewhere else ""
    console.print(
        f"{summary.done} done, {summary.failed} failed, {summary.skipped} already in {store}"
        f"{elsewhere} ({summary.wall_seconds:.1f} s)"
    )
    if summary.failed:
        console.print(f"see errors: gradleak results {store} --where status=failed")


@app.command()
def results(
    store: Annotated[Path, typer.Argument(help="Results store (SQLite file).")],
    format_: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Keep runs with key.path=value (repeatable; also status=)."),
    ] = None,
    sweep_name: SweepNameOption = None,
    relative_to: Annotated[
        list[str] | None,
        typer.Option(
            "--relative-to",
            help="Add ΔPSNR %/ΔSSIM % against each run's baseline: the run with key.path=value "
            "(repeatable) that agrees on every other varying key.",
        ),
    ] = None,
) -> None:
    """Print the runs of a results store, filtered on config keys."""
    from gradleak.experiments.report import FORMATS, load_runs, relative_changes, select
    from gradleak.experiments.store import ResultStore

    formatter = FORMATS.get(format_)
    with ResultStore.open_existing(store) as opened:
        loaded = load_runs(opened, sweep_name)
    runs = select(loaded, where or [])
    # Baselines are looked for among all loaded runs, so --where may hide them from the table.
    relative = relative_changes(runs, relative_to, pool=loaded) if relative_to else None
    sys.stdout.write(formatter(runs, relative))


@app.command()
def report(
    store: Annotated[Path, typer.Argument(help="Results store (SQLite file).")],
    html: Annotated[Path, typer.Option("--html", help="Page to write.")] = Path("report.html"),
    sweep_name: SweepNameOption = None,
) -> None:
    """Write one self-contained HTML page: sortable table, plots and every reconstruction."""
    from gradleak.experiments.report_html import write_report

    count = write_report(store, html, sweep_name)
    console.print(f"{count} runs -> {html}")
