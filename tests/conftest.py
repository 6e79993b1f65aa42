"""Shared test fixtures: the offline data root, and a guard that no test leaks torch state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradleak.config import default_data_root
from gradleak.runtime import RuntimeState


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``GRADLEAK_TEST_ORDER=reversed`` runs the test files in reversed order (each file's tests
    in their own order), with ``-p no:randomly``: a check that no test needs another to run
    first. pytest-randomly shuffles every other run."""
    if os.environ.get("GRADLEAK_TEST_ORDER") != "reversed":
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(str(item.path), []).append(item)
    items[:] = [item for path in reversed(list(files)) for item in files[path]]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The offline data sets (../shared/data or $GRADLEAK_DATA)."""
    root = default_data_root()
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"offline data sets not found under {root} (set GRADLEAK_DATA)")
    return root


@pytest.fixture(scope="session")
def text_cache() -> Path:
    """Where the pinned gensim wheel's corpora are cached ($GRADLEAK_TEXT_CACHE, or one folder
    under the temp dir so the wheel is fetched once per machine); skip when it cannot be had."""
    import tempfile

    from gradleak.data.text_corpus import GENSIM_MEMBERS, gensim_file
    from gradleak.errors import DataError

    cache = Path(
        os.environ.get("GRADLEAK_TEXT_CACHE") or Path(tempfile.gettempdir()) / "gradleak-text-cache"
    )
    try:
        for name in GENSIM_MEMBERS:
            gensim_file(name, cache)
    except DataError as exc:
        pytest.skip(f"offline and the gensim 4.4.0 corpora are not cached in {cache}: {exc}")
    return cache


@pytest.fixture(autouse=True)
def _no_leaked_torch_state() -> Iterator[None]:
    """Fail a test that leaves torch's thread count, default dtype or grad mode changed, and
    give every test the global generators it found: a leak makes the next test's numbers
    depend on the order the suite runs in (a numerical test once failed only after a CLI test
    had left torch at one thread)."""
    before = RuntimeState.capture()
    yield
    changed = before.changed_settings(RuntimeState.capture())
    before.restore()
    if changed:
        detail = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        pytest.fail(f"the test left process-wide torch settings changed: {detail}")
