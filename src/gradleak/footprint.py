"""Pre-flight memory check: refuse a config whose data cannot be allocated, before any work.

The schema bounds every size on its own (``data.image_size`` up to 1024, ...), but their
product can still be terabytes: each client must hold at least ``federation.batch_size``
images, so the federation needs ``num_clients * batch_size`` float32 images of
``channels * image_size**2`` values. Asking torch for that fails deep inside the simulation with
a traceback (or the kernel kills the process); here it is one line before anything is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from gradleak.config import ExperimentConfig
from gradleak.errors import ConfigError

BYTES_PER_VALUE = 4
"""float32, the dtype every data loader produces."""


def data_bytes(config: ExperimentConfig) -> int:
    """The least memory the configured data occupies as float32 tensors."""
    fed, data = config.federation, config.data
    images = max(fed.num_clients * fed.batch_size, data.max_images or 0)
    channels = data.channels or 3
    return images * channels * data.image_size**2 * BYTES_PER_VALUE


def output_bytes(config: ExperimentConfig) -> int:
    """About what a run folder takes: the reconstruction and the ground truth as float32."""
    data = config.data
    images = config.federation.batch_size
    return 2 * images * (data.channels or 3) * data.image_size**2 * BYTES_PER_VALUE


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the kernel says can be allocated now, or None where it does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def check_fits_in_memory(config: ExperimentConfig) -> None:
    """Raise a one-line ConfigError when the data alone exceeds the memory available."""
    need, have = data_bytes(config), available_memory()
    if have is not None and need > have:
        data = config.data
        images = need // ((data.channels or 3) * data.image_size**2 * BYTES_PER_VALUE)
        raise ConfigError(
            f"the data alone needs {_human(need)} ({images} images of {data.image_size}x"
            f"{data.image_size} px, at least federation.batch_size per client) but "
            f"{_human(have)} of memory is available; lower data.image_size, "
            "federation.batch_size or federation.num_clients"
        )
