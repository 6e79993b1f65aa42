"""SIGTERM (timeout, Slurm, docker stop) and Ctrl-C against a real ``gradleak run`` process.

During the attack either one keeps the best reconstruction and writes the run folder; before
the attack it is one line. The exit status is the shell's 128 + signal in both cases.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo.yaml")
TINY = [
    "--set",
    "data.max_images=1",
    "--set",
    "federation.batch_size=1",
    "--set",
    "model.width=4",
    "--set",
    "metrics.lpips=false",
]
STARTUP_SECONDS = 60.0
"""How long the process may take to reach the awaited output (imports are slow on a busy host)."""


class Gradleak:
    """A ``gradleak`` subprocess whose stdout is read as it comes."""

    def __init__(self, args: list[str]) -> None:
        env = {
            **os.environ,
            "TTY_INTERACTIVE": "1",
            "TTY_COMPATIBLE": "1",
            "COLUMNS": "200",
            "OMP_NUM_THREADS": "1",
        }
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradleak.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        self.out = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            self.out += chunk

    def wait_for(self, pattern: str) -> re.Match[bytes]:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            found = re.search(pattern.encode(), self.out)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.process.kill()
        pytest.fail(f"never printed {pattern!r}: {self.out[-2000:]!r}")

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        try:
            _, err = self.process.communicate(timeout=STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        return self.process.returncode, err.decode()


@pytest.mark.timeout(150)
def test_sigterm_during_attack_keeps_the_best_result(tmp_path: Path) -> None:
    """Ctrl-C here already worked (the attack loop catches KeyboardInterrupt); SIGTERM now too."""
    out = tmp_path / "run"
    run = Gradleak(["run", DEMO, "--output", str(out), *TINY, "--set", "attack.iterations=1000000"])
    run.wait_for(r"attack.*?\b([1-9][0-9]*)/1000000")
    code, err = run.stop(signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert 0 < metrics["iterations"] < 1000000
    assert (out / "tensors.pt").is_file() and (out / "reconstruction.png").is_file()


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_the_federation_simulates_is_one_line(
    signum: int, status: int, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run = Gradleak(
        ["run", DEMO, "--output", str(out), *TINY, "--set", "federation.pretrain_rounds=100000000"]
    )
    run.wait_for(r"threat")
    time.sleep(0.5)
    code, err = run.stop(signum)
    assert code == status, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert not (out / "metrics.json").exists()
