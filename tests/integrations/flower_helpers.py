"""Where the example Flower app lives, and the environment its processes run in."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "flower"


def example_env() -> dict[str, str]:
    """The environment the simulation and the CLI run in: this checkout's gradleak and the
    example package on the path, one thread per process on a small machine."""
    paths = [str(REPO / "src"), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "OMP_NUM_THREADS": "1",
    }
