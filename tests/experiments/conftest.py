"""Fixtures for the sweep tests: the owner of a run left ``running`` by a killed sweep."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def dead_owner() -> str:
    """``host:pid`` of a process that has exited, as a SIGKILLed sweep's claims read."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"
