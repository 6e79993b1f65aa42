"""Download one source archive from the package index by pinned hash, through pip itself.

pip is the one network client gradleak may rely on: it honours the user's index, proxy and
certificate settings, and in ``--require-hashes`` mode it refuses an archive whose SHA-256 is
not the pinned one before unpacking or building anything from it. (pip then prepares the
sdist's metadata, which runs its ``setup.py``; callers pin only archives whose ``setup.py``
they have read.) ``--no-deps`` keeps it to the one archive and ``--no-binary :all:`` keeps it
to the sdist, whose hash is the one pinned.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gradleak.errors import DataError


def pip_download(package: str, version: str, sha256: str, dest: Path, timeout: float = 900) -> Path:
    """Download ``package==version`` (sdist, hash-checked) into ``dest``; return the archive."""
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{package}=={version} --hash=sha256:{sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--require-hashes", "-r", str(requirements), "-d", str(dest / "out"),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download of {package} {version} took over {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        reason = next((line for line in lines if "ERROR" in line or "HASH" in line), None)
        raise DataError(
            f"pip could not download {package} {version} with sha256 {sha256[:12]}…: "
            f"{reason or (lines[-1] if lines else f'exit status {done.returncode}')}"
        )
    archives = sorted((dest / "out").glob("*.tar.gz"))
    if len(archives) != 1:
        raise DataError(f"pip download of {package} {version} left {len(archives)} archives")
    return archives[0]
