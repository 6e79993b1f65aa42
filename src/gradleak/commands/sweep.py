"""Registers ``gradleak sweep``, ``results`` and ``report`` (defined with the experiments code)."""

import gradleak.experiments.cli_sweep  # noqa: F401
