"""A bench-only Python environment holding breaching 0.1.2 beside this checkout's gradleak.

breaching 0.1.2 pins nothing usable today: installed normally it drags in a CUDA torch and a
torchvision whose compiled ops do not match. The recipe that works (``../shared/docs/PERF.md``):
torch pinned by a constraints file, breaching, torchvision and lpips with ``--no-deps``, their
few pure-Python needs installed normally, and gradleak's own dependencies from ``pyproject.toml``.
gradleak itself is not installed: the bench puts this checkout's ``src`` first on the path, so
the environment serves every checkout and always measures the code beside the bench.

The environment is made once under a cache folder; a user who prepared one passes ``--python``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
TORCH = "torch==2.13.0"
NO_DEPS = ("breaching==0.1.2", "torchvision==0.28.0", "lpips")
BREACHING_NEEDS = ("numpy", "scipy", "hydra-core", "pillow", "tqdm")
READY_MARK = ".gradleak-bench-ready"


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/gradleak/bench-breaching`` (``~/.cache`` when unset)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gradleak" / "bench-breaching"


def gradleak_dependencies() -> list[str]:
    """The library's runtime requirements, read from pyproject so that they never drift."""
    import tomllib  # Python 3.11+; the bench's environment is made with the running Python

    with (REPO / "pyproject.toml").open("rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def _pip(python: Path, *args: str, log: Path) -> None:
    """One pip call with the torch pin; its output goes to ``log``, its failure raises."""
    command = [str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), *args]
    with log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"`pip install {' '.join(args)}` failed (see {log})")


def ensure_environment(cache: Path) -> Path:
    """The environment's interpreter, making the environment first if it is not ready.

    Raises RuntimeError with one line saying which step failed; the pip log stays in ``cache``.
    """
    env = cache / "venv"
    python = env / "bin" / "python"
    if (env / READY_MARK).exists():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "install.log"
    print(f"setting up breaching 0.1.2 in {env} (once; log {log})", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    _pip(python, TORCH, log=log)
    _pip(python, "--no-deps", *NO_DEPS, log=log)
    _pip(python, *BREACHING_NEEDS, log=log)
    _pip(python, *gradleak_dependencies(), log=log)
    (env / READY_MARK).write_text("ok\n")
    return python


if __name__ == "__main__":
    print(ensure_environment(Path(sys.argv[1]) if len(sys.argv) > 1 else default_cache()))
