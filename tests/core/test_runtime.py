"""Library calls leave the process as they found it: threads, dtype, grad mode, generators."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
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


def test_a_signal_during_scoring_waits_until_the_run_folder_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM, which the CLI turns into it) arriving while a finished attack is
    scored and written is held: the folder is completed, then the interrupt is delivered."""
    import os
    import signal

    from gradleak.config import validate_config
    from gradleak.experiments import runner

    real_write = runner.write_outputs

    def write_after_a_signal(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Python's own handler would raise right here
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "write_outputs", write_after_a_signal)
    config = validate_config(
        {"attack": {"iterations": 2}, "model": {"name": "mlp"}, "metrics": {"lpips": False}}
    )
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(config, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
