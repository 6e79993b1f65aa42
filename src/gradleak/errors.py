"""User-facing errors.

Anything a user can cause (a bad config value, a missing data set, an impossible federation)
raises a :class:`GradleakError`. The CLI turns it into one line on stderr and exit status 2;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class GradleakError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""


class ConfigError(GradleakError):
    """A config file, key or value that cannot be used."""


class DataError(GradleakError):
    """A data set that is missing, truncated, corrupt or unsafe to load."""


class OutputError(GradleakError):
    """A run folder that cannot be written: a file, read-only, full, or an earlier run."""


class StoreError(ConfigError):
    """A results store that cannot be used: damaged, not a gradleak store, or a full disk."""


class UnknownNameError(ConfigError):
    """A registry was asked for a name it does not hold."""


class CapabilityError(ConfigError):
    """An attack needs something the threat model does not give the attacker."""
