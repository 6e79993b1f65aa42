"""Running experiments: scenarios, the runner, outputs, sweeps and reports."""
