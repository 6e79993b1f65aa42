"""SIGTERM handled like Ctrl-C, and either one reported as one line with the shell's status.

``timeout``, Slurm and ``docker stop`` end a job with SIGTERM, whose default action kills the
process at once: an attack hours in lost everything. Here the first SIGTERM raises
``KeyboardInterrupt`` like Ctrl-C does, so the attack loop keeps its best reconstruction and the
run folder is written (a second SIGTERM while that happens is ignored; SIGKILL still works). An
interrupt that reaches the command line before any result exists is one line, and the exit
status is the shell's convention, 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from gradleak.cli_app import console

_received: list[int] = []
_owner: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _owner and os.getpid() != _owner[0]:
        # A forked child inherited the handler: it dies as SIGTERM meant it to.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    first = not _received
    _received.append(signum)
    if first:
        raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt (main thread only; the previous
    handler comes back after, so a library caller's process is left as it was)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _owner[:] = [os.getpid()]
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_name() -> str:
    """What stopped the process: SIGTERM when one arrived, else Ctrl-C."""
    return "SIGTERM" if _received else "Ctrl-C"


def exit_status() -> int:
    """128 + the signal that interrupted: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + (_received[0] if _received else int(signal.SIGINT))


@contextmanager
def interrupt_exits(what: str | Callable[[], str]) -> Iterator[None]:
    """Turn a KeyboardInterrupt escaping the block into one line and exit 130/143.

    ``what`` says what was lost, e.g. ``before the attack finished; no run folder written``, or
    is asked at the interrupt when that depends on how far the work got.
    """
    try:
        yield
    except KeyboardInterrupt:
        lost = what if isinstance(what, str) else what()
        console.print(
            f"[yellow]interrupted ({signal_name()}) {lost}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(exit_status()) from None
