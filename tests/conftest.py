"""Shared test fixtures: the offline data root and a tiny, fast experiment config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradleak.config import default_data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The offline data sets (../shared/data or $GRADLEAK_DATA)."""
    root = default_data_root()
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"offline data sets not found under {root} (set GRADLEAK_DATA)")
    return root
