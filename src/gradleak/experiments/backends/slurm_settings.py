"""What a sweep tells Slurm about its job arrays: the sweep file's ``slurm`` section.

Kept apart from :mod:`.slurm_jobs` so that a sweep file is validated without submitit installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from gradleak.errors import ConfigError

MAX_TIMEOUT_MIN = 60 * 24 * 30


class SlurmSettings(BaseModel):
    """Per-task Slurm parameters; CPUs and GPUs come from ``resources``.

    ``timeout_min`` is each array task's time limit (one run); ``array_parallelism`` caps how
    many tasks of one array Slurm starts at once (``%N``), default: all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    partition: str | None = Field(default=None, min_length=1, max_length=200)
    account: str | None = Field(default=None, min_length=1, max_length=200)
    timeout_min: int = Field(default=60, ge=1, le=MAX_TIMEOUT_MIN)
    mem_gb: float | None = Field(default=None, gt=0.0, le=1e5)
    array_parallelism: int | None = Field(default=None, ge=1, le=100_000)


def parse_slurm(raw: Any, where: str = "sweep slurm") -> SlurmSettings:
    """Validate a sweep file's ``slurm`` section, one line on failure."""
    if raw is None:
        return SlurmSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must map Slurm settings to values")
    try:
        return SlurmSettings.model_validate(dict(raw))
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(SlurmSettings.model_fields)
            raise ConfigError(f"{where} key {key!r} does not exist; known: {known}") from None
        raise ConfigError(f"{where}.{key}: {err['msg']}") from None
