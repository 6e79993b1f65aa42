"""``gradleak prior train``: make a diffusion prior for the curious client from a local data set.

The output folder is what ``attack.options.prior.model`` names; it is rewritten at every
checkpoint, so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gradleak.cli_app import DeviceOption, app, console
from gradleak.config import DataConfig
from gradleak.errors import ConfigError

prior_app = typer.Typer(help="Diffusion priors for refining reconstructions.", no_args_is_help=True)
app.add_typer(prior_app, name="prior")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--widths expects comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise ConfigError(f"--widths expects positive integers, got {text!r}")
    return widths


@prior_app.command("train")
def train(
    data: Annotated[
        str, typer.Option("--data", help="Data set name (cifar10, celeba, imagefolder, ...).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    root: Annotated[
        Path | None, typer.Option("--root", help="Data root (default: the data folder).")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="train or test; train keeps test images unseen.")
    ] = "train",
    image_size: Annotated[
        int, typer.Option("--image-size", help="Side of the square images.")
    ] = 32,
    max_images: Annotated[
        int | None, typer.Option("--max-images", help="Use only this many images.")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps.")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: Annotated[float, typer.Option("--lr")] = 2e-4,
    widths: Annotated[
        str, typer.Option("--widths", help="UNet block widths, e.g. 32,64,64.")
    ] = "32,64,64",
    attention: Annotated[bool, typer.Option("--attention/--no-attention")] = False,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every")] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOption = None,
) -> None:
    """Train a small DDPM (diffusers UNet2DModel) and save it as a DDPMPipeline folder."""
    from gradleak.data import load_dataset
    from gradleak.experiments.runner import resolve_device
    from gradleak.priors.training import PriorTrainSettings, train_ddpm

    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test, got {split!r}")
    if min(steps, batch_size, checkpoint_every, image_size) < 1 or lr <= 0:
        raise ConfigError(
            "--steps, --batch-size, --checkpoint-every, --image-size and --lr must be positive"
        )
    cfg = DataConfig(
        name=data,
        root=root,
        split=split,  # type: ignore[arg-type]
        image_size=image_size,
        max_images=max_images,
        shuffle=True,
    )
    dataset = load_dataset(cfg, seed)
    settings = PriorTrainSettings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        widths=_widths(widths),
        attention=attention,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    console.print(
        f"[bold]prior[/]: DDPM on {len(dataset)} {data} images ({split}, {image_size}px), "
        f"widths {settings.widths}, {steps} steps -> {output}"
    )
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("train", total=steps, loss=float("nan"))
        losses = train_ddpm(
            dataset.images,
            output,
            settings,
            resolve_device(device or "auto"),
            lambda step, loss: bar.update(task, completed=step, loss=loss),
        )
    tail = losses[-min(50, len(losses)) :]
    console.print(
        f"saved {output} (mean loss of the last {len(tail)} steps: {sum(tail) / len(tail):.4f})"
    )
