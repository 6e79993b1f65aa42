"""A run folder's life: checked before the attack, written file by file, finished by metrics.json.

A run can take hours, so its folder is checked before any work: a path that is a file, a folder
that cannot be written (read-only, another user's) or a full disk is refused at once, and an
earlier run is never silently replaced (``--overwrite`` says so). Every file is written to a
temporary name and renamed into place, so no file is ever half written, and ``metrics.json``
comes last: a folder without it is not a finished run, whatever else it holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gradleak.errors import OutputError

RUN_FILES = (
    "config.yaml",
    "reconstruction.png",
    "reconstruction.html",
    "tensors.pt",
    "metrics.json",
)
"""What a run writes, in the order it writes them (an image run its ``.png``, a text run its
``.html``); ``metrics.json`` marks a finished run."""

RUN_MARKERS = ("config.yaml", "metrics.json")
"""Either one means the folder holds an earlier run."""

MIN_FREE_BYTES = 1 << 20
"""Free space a run folder needs beyond its tensors (the picture and the JSON, with room)."""


def earlier_run(folder: Path) -> str | None:
    """The first run file ``folder`` already holds, or None."""
    return next((name for name in RUN_MARKERS if (folder / name).exists()), None)


def _nearest_existing(folder: Path) -> Path:
    """``folder`` itself, or the closest ancestor that exists (where mkdir will create it)."""
    for candidate in (folder, *folder.absolute().parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_writable(folder: Path, need_bytes: int = 0) -> None:
    """Refuse a ``folder`` that is a file, cannot be written or lacks the space, leaving it as
    it is (a folder that does not exist yet is not created: a run that then fails on its config
    or data leaves nothing behind; the ancestor it would be created in is probed instead)."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        what = "is a file" if base == folder else f"is inside {base}, which is a file"
        raise OutputError(f"output {folder} {what}, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".gradleak-probe-") as probe:
            probe.write(b"probe")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        where = "" if base == folder else f" (its parent {base})"
        raise OutputError(
            f"output folder {folder}{where} is not writable: {exc.strerror or exc}"
        ) from None
    free = shutil.disk_usage(base).free
    if free < need_bytes + MIN_FREE_BYTES:
        raise OutputError(
            f"output folder {folder} has {free} bytes free; the run needs about "
            f"{need_bytes + MIN_FREE_BYTES}"
        )


def prepare_run_folder(folder: Path, overwrite: bool = False, need_bytes: int = 0) -> bool:
    """Prove ``folder`` can take a new run (:func:`check_writable`), before any work.

    An earlier run in it is refused unless ``overwrite``; with it, the earlier run's files are
    removed now (only those, never anything else), so a run that then fails never leaves the old
    ``metrics.json`` beside new files. Returns whether an earlier run was replaced.
    """
    check_writable(folder, need_bytes)
    found = earlier_run(folder) if folder.is_dir() else None
    if found is not None and not overwrite:
        raise OutputError(
            f"output {folder} already holds a run ({found}); pass --overwrite to replace it "
            "or choose another --output"
        )
    if found is not None:
        for name in reversed(RUN_FILES):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
    return found is not None


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) that becomes ``path`` on success."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent, the old file or all of it."""
    with replacing(path) as temporary, temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def output_failure(folder: Path, name: str, exc: OSError) -> OutputError:
    """The one line a failed write becomes: what failed, and what the folder kept."""
    kept = [n for n in RUN_FILES if (folder / n).is_file()]
    return OutputError(
        f"writing {folder / name} failed: {exc.strerror or exc}; kept "
        f"{', '.join(kept) or 'nothing'} (no metrics.json: not a finished run)"
    )
