"""Running experiments: scenarios, the runner, outputs, sweeps and reports."""

from gradleak.experiments import peer_threat  # noqa: F401 - registers the "peer" threat
