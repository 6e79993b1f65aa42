"""``gradleak analyze``: how much of one victim's update survives a rule, honest vs malicious.

It shows *why* a robust rule can help a maliciously curious client: the mean dilutes the victim
to 1/N, while a selection rule steered by the attacker hands over one client's update whole.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gradleak.cli_app import app, console
from gradleak.errors import ConfigError


@app.command()
def analyze(
    rule: Annotated[
        str, typer.Option("--rule", help="Aggregation rule (mean, krum, median, ...).")
    ] = "krum",
    clients: Annotated[int, typer.Option("--clients", help="Clients per round, N.")] = 8,
    byzantine: Annotated[int, typer.Option("--byzantine", help="Malicious clients, f.")] = 1,
    noise: Annotated[float, typer.Option("--noise", help="Client DP noise multiplier.")] = 0.0,
    clip: Annotated[float | None, typer.Option("--clip", help="Client DP clipping norm C.")] = None,
    trials: Annotated[int, typer.Option("--trials", help="Simulated rounds to average.")] = 50,
    estimate_error: Annotated[
        float, typer.Option("--estimate-error", help="Victim estimate error, in spreads.")
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Print the victim's surviving share of the aggregate for an honest and a malicious attacker."""
    from gradleak.experiments.malicious_analysis import Setting, analyse
    from gradleak.fl.malicious.strategies import TOLERANCE

    if trials < 1 or clients < 2 or byzantine < 1 or noise < 0 or (clip is not None and clip <= 0):
        raise ConfigError(
            "analyze needs --trials >= 1, --clients >= 2, --byzantine >= 1, --noise >= 0, --clip > 0"
        )
    a, b = TOLERANCE.get(rule, (1, 1))
    if clients < a * byzantine + b:
        raise ConfigError(
            f"--byzantine {byzantine} is too many for {rule} with {clients} clients: "
            f"it needs N >= {a}f + {b}"
        )
    setting = Setting(rule, clients, byzantine, noise, clip, estimate_error=estimate_error)
    table = Table(
        title=f"{rule}, N={clients}, f={byzantine}, noise={noise}, clip={clip}, {trials} trials"
    )
    for column in (
        "attacker",
        "victim weight",
        "closed form",
        "victim coords",
        "cosine",
        "rel. error",
        "malicious used",
    ):
        table.add_column(column, justify="right")
    for attacker in ("honest", "malicious"):
        s = analyse(setting, attacker, trials, seed)
        table.add_row(
            attacker,
            f"{s.victim_weight:.3f}",
            "-" if s.closed_form is None else f"{s.closed_form:.3f}",
            f"{s.victim_coordinates:.3f}",
            f"{s.cosine:.3f}",
            f"{s.relative_error:.3f}",
            "-" if s.malicious_selected is None else f"{s.malicious_selected:.2f}",
        )
    console.print(table)
