"""``gradleak analyze``: how much of one victim's update survives a rule, honest vs malicious.

It shows *why* a robust rule can help a maliciously curious client: the mean dilutes the victim
to 1/N, while a selection rule steered by the attacker hands over one client's update whole.
And where it cannot: whether steering works depends on the round's geometry, so ``--geometry``
picks where the honest updates come from (``experiments.geometry``): ``synthetic`` (isotropic by
default; ``--rank``, ``--victim-offset``, ``--victim-rank`` make it look like real updates),
``recorded`` (the real honest rounds of ``--config``, one per seed: ``--trials`` seeds) or
``calibrated`` (synthetic rounds with the quantities measured on those real rounds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gradleak.cli_app import SetOption, app, console
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
    geometry: Annotated[
        str, typer.Option("--geometry", help="synthetic, recorded or calibrated.")
    ] = "synthetic",
    spread: Annotated[
        float, typer.Option("--spread", help="Synthetic: client parts' norm / common norm.")
    ] = 1.0,
    rank: Annotated[
        int | None, typer.Option("--rank", help="Synthetic: dimension the parts live in.")
    ] = None,
    victim_offset: Annotated[
        float, typer.Option("--victim-offset", help="Synthetic: victim's part / typical part.")
    ] = 1.0,
    victim_rank: Annotated[
        int | None, typer.Option("--victim-rank", help="Synthetic: victim's centrality rank.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="malicious_peer config (recorded geometry).")
    ] = None,
    estimate: Annotated[
        str,
        typer.Option(
            "--estimate",
            help="attacker: the malicious client's own victim estimate; oracle: the victim's "
            "true update (the geometry's ceiling, not an attack).",
        ),
    ] = "attacker",
    set_: SetOption = None,
) -> None:
    """Print the victim's surviving share of the aggregate for an honest and a malicious attacker."""
    import gradleak.experiments.recorded_geometry  # noqa: F401  (registers its sources)
    from gradleak.config import load_config
    from gradleak.experiments.geometry import GEOMETRIES, GeometryRequest, OracleEstimate
    from gradleak.experiments.malicious_analysis import Setting, analyse
    from gradleak.fl.malicious.strategies import TOLERANCE

    if trials < 1 or clients < 2 or byzantine < 1 or noise < 0 or (clip is not None and clip <= 0):
        raise ConfigError(
            "analyze needs --trials >= 1, --clients >= 2, --byzantine >= 1, --noise >= 0, --clip > 0"
        )
    if spread <= 0 or victim_offset <= 0 or (rank is not None and rank < 1):
        raise ConfigError("analyze needs --spread > 0, --victim-offset > 0, --rank >= 1")
    if estimate not in ("attacker", "oracle"):
        raise ConfigError(f"--estimate is attacker or oracle, got {estimate!r}")
    resolved = None if config is None else load_config(config, set_)
    strategy, options = "auto", {}
    if resolved is not None:  # the deployment is the config's
        rule, clients = resolved.defense.aggregator.name, resolved.federation.num_clients
        byzantine = resolved.threat.num_malicious
        strategy, options = resolved.threat.strategy, dict(resolved.threat.strategy_options)
    a, b = TOLERANCE.get(rule, (1, 1))
    if clients < a * byzantine + b:
        raise ConfigError(
            f"--byzantine {byzantine} is too many for {rule} with {clients} clients: "
            f"it needs N >= {a}f + {b}"
        )
    setting = Setting(rule, clients, byzantine, noise, clip, spread, estimate_error,
                      strategy=strategy, strategy_options=options)  # fmt: skip
    request = GeometryRequest(spread, rank, victim_offset, victim_rank, estimate_error,
                              setting.dimension, clip, noise, resolved)  # fmt: skip
    source = GEOMETRIES.get(geometry)(request)
    if estimate == "oracle":
        source = OracleEstimate(source)
    what = "seeds" if geometry != "synthetic" else "trials"
    table = Table(
        title=f"{rule}, N={clients}, f={byzantine}, noise={noise}, clip={clip}, "
        f"{geometry} geometry, {estimate} estimate, {trials} {what}"
    )
    for column in (
        "attacker",
        "victim weight",
        "closed form",
        "victim coords",
        "cosine",
        "rel. error",
        "malicious used",
        "rank shift",
    ):
        table.add_column(column, justify="right")
    for attacker in ("honest", "malicious"):
        s = analyse(setting, attacker, trials, seed, source)
        table.add_row(
            attacker,
            f"{s.victim_weight:.3f}",
            "-" if s.closed_form is None else f"{s.closed_form:.3f}",
            f"{s.victim_coordinates:.3f}",
            f"{s.cosine:.3f}",
            f"{s.relative_error:.3f}",
            "-" if s.malicious_selected is None else f"{s.malicious_selected:.2f}",
            "-" if s.rank_shift is None else f"{s.rank_shift:.2f}",
        )
    console.print(table)
