"""A rich progress bar for attacks: iteration, loss and elapsed time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gradleak.attacks.base import ProgressCallback


@contextmanager
def attack_progress(total: int) -> Iterator[ProgressCallback]:
    """Yield a callback (iteration, loss) that advances a bar; restarts continue the count."""
    columns = (
        TextColumn("[bold]attack"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4g}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("attack", total=total, loss=float("nan"))
        done = 0
        last = 0

        def update(iteration: int, loss: float) -> None:
            nonlocal done, last
            if iteration < last:
                done += last
            last = iteration
            bar.update(task, completed=done + iteration, loss=loss)

        yield update
