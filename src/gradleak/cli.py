"""The ``gradleak`` command line: core commands (run, demo, datasets) and the entry point.

User mistakes (``GradleakError``) print one line and exit with status 2; ``--debug`` shows the
traceback instead. Further command groups live in ``gradleak.commands`` and register themselves.
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gradleak.cli_app import DeviceOption, OutputOption, SetOption, _state, app, console
from gradleak.config import ExperimentConfig, load_config
from gradleak.errors import GradleakError
from gradleak.interrupts import exit_status, interrupt_exits, sigterm_as_interrupt

try:
    # The command groups, listed explicitly: importing each registers its commands on the app.
    from gradleak.commands import (  # noqa: F401
        analyze,
        attack,
        prior,
        protocol,
        sweep,
        train,
        weights,
    )
except KeyboardInterrupt:  # Ctrl-C during the slow imports (torch, ...): one line, no traceback
    sys.stderr.write("interrupted (Ctrl-C) while gradleak was starting\n")
    raise SystemExit(130) from None


def demo_config_path() -> Path:
    return Path(str(resources.files("gradleak") / "configs" / "demo.yaml"))


def _describe(config: ExperimentConfig) -> None:
    """The threat model and deployment, printed before the run so the user sees what is assumed."""
    fed, threat = config.federation, config.threat
    Console().print(
        f"[bold]threat[/]: {threat.attacker} attacks client {threat.victim} at round {threat.round} "
        f"| [bold]attack[/]: {config.attack.name}, {config.attack.iterations} iterations, "
        f"labels {config.attack.labels}\n[bold]deployment[/]: {config.data.name} "
        f"{_input_size(config)}, {config.model.name}, {fed.num_clients} clients, "
        f"batch {fed.batch_size}, {fed.protocol}, aggregator {config.defense.aggregator.name}"
    )


def _input_size(config: ExperimentConfig) -> str:
    from gradleak.data.text_loading import is_text_dataset

    if is_text_dataset(config.data.name):
        return f"{config.data.seq_len} tokens"
    return f"{config.data.image_size}px"


SUMMARY_KEYS = {
    "image": (
        "psnr_mean",
        "ssim_mean",
        "lpips_mean",
        "label_accuracy",
        "iterations",
        "wall_seconds",
    ),
    "text": (
        "rouge1_mean",
        "rouge2_mean",
        "rougeL_mean",
        "token_accuracy",
        "label_accuracy",
        "iterations",
        "wall_seconds",
    ),
}
"""The columns of the summary table a run prints, by the modality of its data."""


def _format(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _summary(metrics: dict[str, Any], output: Path) -> None:
    modality = metrics.get("modality", "image")
    scored = metrics.get("num_scored_sentences", metrics.get("num_scored_images"))
    unit = "sentences" if modality == "text" else "images"
    table = Table(title=f"{metrics['attack']} — {scored} {unit} scored")
    keys = SUMMARY_KEYS[modality]
    for key in keys:
        table.add_column(key)
    table.add_row(*[_format(metrics.get(key)) for key in keys])
    Console().print(table)
    if metrics.get("diverged"):
        console.print("[yellow]the attack diverged; the best reconstruction before that was kept")
    if metrics.get("interrupted"):
        console.print("[yellow]interrupted; the best reconstruction so far was kept")
    console.print(f"outputs in {output}")


INTERRUPTED_RUN = "before the run finished; no metrics.json was written"


def _interrupted_run(output: list[Path]) -> str:
    """What an interrupt left behind: a signal held while a finished run was scored and written
    arrives only after its metrics.json (``runtime.signals_held``)."""
    if output and (output[0] / "metrics.json").is_file():
        return f"after the run finished; its outputs are in {output[0]}"
    return INTERRUPTED_RUN


OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an earlier run in the --output folder.")
]


def _run(
    config_path: Path,
    overrides: list[str],
    output: Path | None,
    device: str | None,
    overwrite: bool = False,
    chosen: list[Path] | None = None,
) -> None:
    from gradleak.experiments import run_folder, runner
    from gradleak.experiments.preflight import preflight
    from gradleak.footprint import check_fits_in_memory, output_bytes

    if device is not None:
        overrides = [*overrides, f"device={device}"]
    config = preflight(load_config(config_path, overrides))
    check_fits_in_memory(config)
    output = output or Path("runs") / f"{config_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if chosen is not None:
        chosen.append(output)
    if run_folder.prepare_run_folder(output, overwrite, output_bytes(config)):
        console.print(f"replacing the earlier run in {output}", highlight=False, soft_wrap=True)
    _describe(config)
    metrics = runner.run_experiment(config, output, progress=True)
    _summary(metrics, output)
    if metrics.get("interrupted"):
        raise typer.Exit(exit_status())


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    set_: SetOption = None,
    output: OutputOption = None,
    device: DeviceOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run one experiment and write config.yaml, metrics.json and reconstruction.png."""
    chosen: list[Path] = []
    with interrupt_exits(lambda: _interrupted_run(chosen)):
        _run(config, set_ or [], output, device, overwrite, chosen)


@app.command()
def demo(set_: SetOption = None, output: OutputOption = None, device: DeviceOption = None) -> None:
    """Run the bundled default experiment on bundled images (no download); replaces an earlier
    demo run in its output folder."""
    chosen: list[Path] = []
    with interrupt_exits(lambda: _interrupted_run(chosen)):
        _run(demo_config_path(), set_ or [], output or Path("demo-output"), device, True, chosen)


@app.command()
def datasets(
    root: Annotated[Path | None, typer.Option("--root", help="Data folder to inspect.")] = None,
) -> None:
    """Which data sets are present under the data root, and how many images each holds."""
    from gradleak.config import default_data_root
    from gradleak.data import available_datasets

    base = root or default_data_root()
    table = Table(title=f"data sets under {base}")
    for column in ("name", "present", "images", "detail"):
        table.add_column(column)
    for name, present, count, detail in available_datasets(base):
        table.add_row(
            name, "yes" if present else "no", "—" if count is None else str(count), detail
        )
    Console().print(table)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one line + exit 2."""
    try:
        with sigterm_as_interrupt():
            app()
    except GradleakError as exc:
        if _state["debug"]:
            raise
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
