"""The one progress bar of gradleak: a label, the bar, done/total, some live fields, elapsed.

Attacks, sweeps, training and prior training each show a bar; building them here keeps the
look the same everywhere and keeps rich's column API in one module.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(
    label: str,
    *fields: str,
    enabled: bool = True,
    console: Console | None = None,
    remaining: bool = False,
) -> Progress:
    """A bar ``label [████] n/N <fields> elapsed``; each field is rich markup that may name
    ``{task.fields[...]}`` or ``{task.description}``. ``enabled=False`` draws nothing."""
    columns: list[ProgressColumn] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(field) for field in fields]
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, disable=not enabled)
