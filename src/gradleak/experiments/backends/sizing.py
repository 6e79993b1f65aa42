"""How much of a machine or cluster one run takes, and how many runs fit at once.

Pure functions over plain numbers, so that the rules are tested without Ray, Slurm or a GPU.
The rules exist because a backend that submits more runs than its resources hold makes the
store say ``running`` for runs that sit in a queue, and a run that asks for ``device: cuda``
where no GPU is handed to it fails only after minutes of start-up, once per run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from gradleak.errors import ConfigError

MAX_PER_RUN = 1024.0
CUDA_DEVICE = re.compile(r"^cuda(?::([0-9]+))?$")


class RunResources(BaseModel):
    """What one run reserves: CPUs (also its torch threads) and GPUs, which may be a fraction.

    ``gpus_per_run: 0.25`` puts four small attacks on one GPU. Above one, only whole GPUs
    (Ray's rule, and a run cannot use 1.5 devices).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpus_per_run: float = Field(default=1.0, gt=0.0, le=MAX_PER_RUN)
    gpus_per_run: float = Field(default=0.0, ge=0.0, le=MAX_PER_RUN)

    @model_validator(mode="after")
    def _whole_above_one(self) -> RunResources:
        for name in ("cpus_per_run", "gpus_per_run"):
            value = getattr(self, name)
            if value > 1.0 and not float(value).is_integer():
                raise ValueError(f"{name} {value} above 1 must be a whole number")
        return self


def parse_resources(raw: Any, where: str = "sweep resources") -> RunResources:
    """Validate a raw mapping (a sweep file's ``resources``) into one line on failure."""
    if raw is None:
        return RunResources()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must map cpus_per_run/gpus_per_run to numbers")
    try:
        return RunResources.model_validate(dict(raw))
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(
                f"{where} key {key!r} does not exist; known: cpus_per_run, gpus_per_run"
            ) from None
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}{'.' + key if key else ''}: {message}") from None


def with_overrides(
    resources: RunResources, cpus_per_run: float | None, gpus_per_run: float | None
) -> RunResources:
    """The sweep file's resources with the command line's flags on top, validated again."""
    merged = resources.model_dump()
    if cpus_per_run is not None:
        merged["cpus_per_run"] = cpus_per_run
    if gpus_per_run is not None:
        merged["gpus_per_run"] = gpus_per_run
    return parse_resources(merged, "resources")


def runs_that_fit(available: Mapping[str, float], per_run: RunResources) -> int:
    """How many runs the resources hold at once: the scarcer of CPUs and GPUs decides.

    ``available`` is Ray's ``cluster_resources()`` shape (``{"CPU": 16.0, "GPU": 2.0}``).
    Refuses, rather than queueing for ever, when not even one run fits.
    """
    cpus = float(available.get("CPU", 0.0))
    gpus = float(available.get("GPU", 0.0))
    # A tiny slack so that 1.0 // (1/3) style float division never loses a whole run.
    fits = math.floor(cpus / per_run.cpus_per_run + 1e-9)
    if per_run.gpus_per_run > 0:
        fits = min(fits, math.floor(gpus / per_run.gpus_per_run + 1e-9))
    if fits < 1:
        raise ConfigError(
            f"one run needs {per_run.cpus_per_run:g} CPU and {per_run.gpus_per_run:g} GPU, "
            f"but there are {cpus:g} CPU and {gpus:g} GPU"
        )
    return fits


def cuda_index(device: str) -> int | None:
    """``cuda`` → 0, ``cuda:N`` → N, anything else (``cpu``, ``auto``) → None."""
    match = CUDA_DEVICE.match(device)
    if match is None:
        return None
    return int(match.group(1) or 0)


def check_devices(
    devices: Iterable[str], gpus: float, per_run: RunResources, where: str, pinned: bool
) -> None:
    """Refuse, in one line and before anything runs, runs that ask for a GPU they cannot get.

    ``gpus`` is what the backend has; ``pinned`` says the backend hands each run only the GPUs
    it reserved (Ray sets ``CUDA_VISIBLE_DEVICES``), so there a run on ``cuda`` needs
    ``gpus_per_run > 0`` and ``cuda:N`` must lie inside its share. ``auto`` never refuses: it
    falls back to the CPU by design.
    """
    wanted = sorted({d for d in devices if cuda_index(d) is not None})
    if not wanted:
        return
    if gpus <= 0:
        raise ConfigError(f"runs ask for device {wanted[0]} but {where} has no GPU")
    if pinned and per_run.gpus_per_run <= 0:
        raise ConfigError(
            f"runs ask for device {wanted[0]} but gpus_per_run is 0, so {where} gives them no "
            "GPU; set resources.gpus_per_run (e.g. 0.25 to share one GPU among four runs)"
        )
    visible = max(1, math.ceil(per_run.gpus_per_run)) if pinned else int(gpus)
    too_high = [d for d in wanted if (cuda_index(d) or 0) >= visible]
    if too_high:
        raise ConfigError(
            f"runs ask for device {too_high[0]} but each run sees {visible} GPU on {where}; "
            "use device: cuda"
        )
