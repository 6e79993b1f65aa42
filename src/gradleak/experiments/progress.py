"""A rich progress bar for attacks: iteration, loss and elapsed time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gradleak.attacks.base import ProgressCallback
from gradleak.progress_bar import progress_bar


@contextmanager
def attack_progress(total: int) -> Iterator[ProgressCallback]:
    """Yield a callback (iteration, loss) that advances a bar; restarts continue the count."""
    with progress_bar("[bold]attack", "loss {task.fields[loss]:.4g}") as bar:
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
