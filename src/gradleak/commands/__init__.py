"""CLI command modules, one per command group. Each registers its commands on
``gradleak.cli_app.app`` when imported; ``gradleak.cli`` imports them all, listed by name in one
place, so adding a command group means adding a module here and its name there."""
