"""Library calls leave the process as they found it: threads, dtype, grad mode, generators."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from gradleak.config import validate_config
from gradleak.experiments.runner import run_experiment
from gradleak.runtime import RuntimeState, isolated_runtime

TINY = {
    "threads": 1,
    "data": {"name": "samples", "image_size": 16, "max_images": 1},
    "model": {"name": "mlp", "width": 8},
    "attack": {"iterations": 2},
    "metrics": {"lpips": False},
}


def draws() -> tuple[float, float, float]:
    """The next number of each global generator."""
    return float(torch.rand(1)), float(np.random.rand()), random.random()


def test_run_experiment_restores_threads_and_every_generator(tmp_path: Path) -> None:
    outside = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.manual_seed(1234)
        np.random.seed(1234)
        random.seed(1234)
        state = RuntimeState.capture()
        expected = draws()
        state.restore()
        run_experiment(validate_config(TINY), tmp_path)
        assert torch.get_num_threads() == 2
        assert draws() == expected
    finally:
        torch.set_num_threads(outside)


def test_isolated_runtime_applies_then_restores_even_on_error() -> None:
    before = RuntimeState.capture()
    try:
        with isolated_runtime(threads=3, seed=5):
            assert torch.get_num_threads() == 3
            torch.set_default_dtype(torch.float64)
            torch.set_grad_enabled(False)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert before.changed_settings(RuntimeState.capture()) == {}


def test_changed_settings_names_what_a_test_leaked() -> None:
    before = RuntimeState.capture()
    with isolated_runtime(threads=before.threads + 1, seed=0):
        changed = before.changed_settings(RuntimeState.capture())
    assert changed == {"torch.get_num_threads()": (before.threads, before.threads + 1)}
