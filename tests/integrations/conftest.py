"""The example Flower app of ``examples/flower``, importable by the tests and by Ray's workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from flower_helpers import EXAMPLE, example_env

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))


@pytest.fixture(scope="session")
def simulated_capture(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The example app run once in Flower's simulation engine (Ray): 4 nodes, 2 rounds,
    captured by CaptureStrategy, with ground_truth_mod keeping each node's batch."""
    store = tmp_path_factory.mktemp("flower") / "capture.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "gradleak_flower_example.run", str(store)],
        env={**example_env(), "GRADLEAK_DATA": str(data_root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"the Flower simulation failed:\n{done.stderr[-3000:]}")
    return store
