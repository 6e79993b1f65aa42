"""``gradleak protocol``: the practical evaluation protocol next to the easy setting.

FedLeak's point is that attacks look strong only in toy settings; the table says, setting by
setting, what the ``realistic`` and ``easy`` presets (``configs/presets``) choose and why, so a
reported number can always be read against the protocol it was measured under.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from gradleak.cli_app import app


@dataclass(frozen=True)
class ProtocolRow:
    aspect: str
    key: str
    """The config key that sets it (the presets are checked against these values)."""
    realistic: object
    easy: object
    why: str


PROTOCOL: tuple[ProtocolRow, ...] = (
    ProtocolRow(
        "local batch size",
        "federation.batch_size",
        16,
        2,
        "deployments train on 16-64 images per step; 1-4 is a lab artefact",
    ),
    ProtocolRow(
        "client data split",
        "data.partition.scheme",
        "dirichlet",
        "iid",
        "real clients are non-IID (Dirichlet alpha = 0.5)",
    ),
    ProtocolRow(
        "protocol",
        "federation.protocol",
        "fedavg",
        "fedsgd",
        "clients upload after several local steps, not one gradient",
    ),
    ProtocolRow(
        "local steps",
        "federation.local_steps",
        3,
        1,
        "tau > 1 mixes the batch's gradients over steps",
    ),
    ProtocolRow(
        "attacked round",
        "threat.round",
        4,
        0,
        "a model trained for some rounds has smaller, less informative gradients",
    ),
    ProtocolRow(
        "BatchNorm",
        "model.train_mode",
        True,
        True,
        "train mode: batch statistics couple the images",
    ),
    ProtocolRow(
        "labels",
        "attack.labels",
        "recovered",
        "given",
        "the server does not see labels; it must infer them",
    ),
    ProtocolRow(
        "knows labels",
        "threat.knows_labels",
        False,
        True,
        "no side channel hands the attacker the client's labels",
    ),
)


@app.command()
def protocol() -> None:
    """Print the practical evaluation protocol (the realistic and easy presets)."""
    table = Table(title="Evaluation protocol (configs/presets/realistic.yaml vs easy.yaml)")
    for column in ("aspect", "config key", "realistic", "easy", "why"):
        table.add_column(column)
    for row in PROTOCOL:
        table.add_row(row.aspect, row.key, str(row.realistic), str(row.easy), row.why)
    Console().print(table)
    Console().print(
        "Run one with: gradleak run configs/presets/realistic.yaml "
        "--set attack.name=inverting_gradients"
    )
