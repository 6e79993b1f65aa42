"""The typer app and the options its commands share.

Command modules in ``gradleak.commands`` register themselves on :data:`app`; ``gradleak.cli``
imports them all and runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Measure how much private training data leaks from federated learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
_state = {"debug": False}

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: --set attack.iterations=200 (repeatable)."),
]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Run folder to write.")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto.")]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug
