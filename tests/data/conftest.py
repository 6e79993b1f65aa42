"""Shared fixtures for the data tests: the offline data root, skipping only when files are absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gradleak.config import default_data_root

Require = Callable[..., None]


@pytest.fixture(scope="session")
def data_root() -> Path:
    return default_data_root()


@pytest.fixture
def require(data_root: Path) -> Require:
    """``require("a", "b")`` skips the test when one of those files under the data root is absent."""

    def check(*relative: str) -> None:
        missing = [r for r in relative if not (data_root / r).exists()]
        if missing:
            pytest.skip(
                f"offline data not found: {', '.join(missing)} under {data_root} "
                "(set GRADLEAK_DATA to the data folder)"
            )

    return check
