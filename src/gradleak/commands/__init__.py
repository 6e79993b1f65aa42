"""CLI command modules. Every module in this package is imported so its commands register on
``gradleak.cli_app.app``; add a module here to add a command group."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
