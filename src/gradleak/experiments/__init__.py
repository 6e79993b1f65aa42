"""Running experiments: scenarios, the runner, outputs, sweeps and reports."""

from gradleak.experiments import threats  # noqa: F401 - registers the threats
