"""``gradleak attack --capture STORE --round R --node K``: attack a captured Flower round offline.

The capture is what ``gradleak.integrations.flower.CaptureStrategy`` recorded of a real app; the
attack runs through ``experiments.capture_attack`` and so through ``gradleak.attack``'s one
target path. ``--model`` names a registered gradleak model or ``module:callable`` from the
user's app (imported from the current folder, called without arguments); every other setting
is a ``--set key=value`` (``attack.name``, ``attack.iterations``, ``image_shape``,
``num_classes``, ``local_lr`` ...), written to the run's ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradleak.cli_app import DeviceOption, OutputOption, SetOption, app, console
from gradleak.config import apply_overrides
from gradleak.experiments.capture_attack import run_capture_attack, settings_from


@app.command("attack")
def attack_capture(
    capture: Annotated[Path, typer.Option("--capture", help="Store a CaptureStrategy wrote.")],
    round_: Annotated[int, typer.Option("--round", help="Captured server round (from 1).")],
    model: Annotated[
        str, typer.Option("--model", help="Registered model name, or module:callable.")
    ],
    node: Annotated[
        int | None, typer.Option("--node", help="Attack this node's update, as the server.")
    ] = None,
    peer: Annotated[
        int | None, typer.Option("--peer", help="Attack the round's peers, as this node.")
    ] = None,
    set_: SetOption = None,
    output: OutputOption = None,
    device: DeviceOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run in --output.")
    ] = False,
) -> None:
    """Attack one captured update and write config.yaml, metrics.json, reconstruction.png,
    tensors.pt; scored against the captured ground truth when a simulation kept it."""
    raw = {"capture": str(capture), "round": round_, "node": node, "peer": peer, "model": model}
    cfg = settings_from(apply_overrides(raw, set_ or []))
    who = f"node{cfg.node}" if cfg.node is not None else f"peer{cfg.peer}"
    folder = output or Path(f"capture-attack-r{cfg.round}-{who}")
    metrics = run_capture_attack(cfg, folder, overwrite, device or "cpu")
    if metrics["scored"]:
        console.print(
            f"{metrics['attack']}: PSNR {metrics['psnr_mean']:.2f} dB, SSIM "
            f"{metrics['ssim_mean']:.3f} -> {folder}",
            highlight=False,
        )
    else:
        console.print(f"{metrics['attack']}: {metrics['note']} -> {folder}", highlight=False)
