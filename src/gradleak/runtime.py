"""The process-wide torch settings a run needs (device, threads, seeds), applied and given back.

torch's thread count, default dtype, grad mode and the global random generators (torch, numpy,
Python's ``random``) belong to the whole process. A library call that sets them and leaves them
set changes whatever runs next: a test that ran a CLI command left torch at one thread, and a
later numerical test then compared against a tolerance measured at another thread count.
:func:`isolated_runtime` applies a run's settings and restores what was there before, whatever
way the run ends.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (checked to exist) or ``auto`` (CUDA when there is one) as a device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device {name!r} is not a torch device (use cpu, cuda or auto)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device cuda was asked for but no CUDA GPU is available; use --device cpu"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_torch(config: ExperimentConfig) -> None:
    """Apply the config's thread count and seed every random generator from its one seed.

    This changes the process for good; library code uses :func:`isolated_runtime` instead.
    """
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)


@dataclass(frozen=True)
class RuntimeState:
    """A snapshot of torch's process-wide settings and every global random generator."""

    threads: int
    default_dtype: torch.dtype
    grad_enabled: bool
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    numpy_rng: dict[str, Any]
    python_rng: tuple[Any, ...]

    @classmethod
    def capture(cls) -> RuntimeState:
        """The process's settings and generator states now."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(
            threads=torch.get_num_threads(),
            default_dtype=torch.get_default_dtype(),
            grad_enabled=torch.is_grad_enabled(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=cuda,
            numpy_rng=np.random.get_state(legacy=False),
            python_rng=random.getstate(),
        )

    def settings(self) -> dict[str, Any]:
        """The settings a caller should never find changed (the generators advance by design)."""
        return {
            "torch.get_num_threads()": self.threads,
            "torch.get_default_dtype()": self.default_dtype,
            "torch.is_grad_enabled()": self.grad_enabled,
        }

    def changed_settings(self, later: RuntimeState) -> dict[str, tuple[Any, Any]]:
        """Each setting that differs in ``later``, as (before, after)."""
        now = later.settings()
        return {k: (v, now[k]) for k, v in self.settings().items() if now[k] != v}

    def restore(self) -> None:
        """Put every setting and generator state back as captured."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        torch.set_default_dtype(self.default_dtype)
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)


@contextmanager
def isolated_runtime(threads: int, seed: int) -> Iterator[None]:
    """Run the block at ``threads`` torch threads with every generator seeded from ``seed``,
    then put back the thread count, dtype, grad mode and generator states found on entry."""
    before = RuntimeState.capture()
    try:
        torch.set_num_threads(threads)
        seed_everything(seed)
        yield
    finally:
        before.restore()


@contextmanager
def signals_held() -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM while the block runs, then deliver the first one that came.

    Scoring and writing a finished attack take seconds; an interrupt there would lose an attack
    that took hours. The block finishes, the handlers found on entry come back, and a held
    signal is re-raised to them (a CLI then exits 130/143 after the folder is complete). Main
    thread only: elsewhere signals cannot be handled, and the block runs as it is.
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {
        sig: signal.signal(sig, lambda signum, frame: held.append(signum)) for sig in watched
    }
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        signal.raise_signal(held[0])
