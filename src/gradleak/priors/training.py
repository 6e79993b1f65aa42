"""Training a small DDPM on a local data set, for the curious client's diffusion prior.

No pretrained model can be downloaded everywhere gradleak runs, so gradleak can make its own:
a diffusers ``UNet2DModel`` with the standard ε-prediction loss and a linear ``DDPMScheduler``,
saved as a ``DDPMPipeline`` folder that :class:`gradleak.priors.diffusion.DiffusionPrior`
loads like a hub model. Train it on the *train* split: the attacks score the test split, so
the prior never saw the images it helps to reconstruct.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.priors.diffusion import import_diffusers

TrainCallback = Callable[[int, float], None]
"""Called as (step, loss) after each optimiser step."""


@dataclass(frozen=True)
class PriorTrainSettings:
    """Size and budget of the DDPM. The defaults fit a CPU in minutes; a GPU affords wider
    blocks (``widths``) and many more steps."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    widths: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = False
    num_train_timesteps: int = 1000
    checkpoint_every: int = 500
    seed: int = 0


def build_unet(image_size: int, channels: int, settings: PriorTrainSettings) -> torch.nn.Module:
    """A UNet with one resolution level per width; attention only at the lowest resolution."""
    diffusers = import_diffusers()
    levels = len(settings.widths)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if settings.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return diffusers.UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=settings.widths,
        layers_per_block=settings.layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(32, reduce(math.gcd, settings.widths)),
        add_attention=settings.attention,
    )


def save_pipeline(unet: torch.nn.Module, scheduler: object, output: Path) -> None:
    """Write ``output`` as a DDPMPipeline folder (model_index.json, unet/, scheduler/)."""
    diffusers = import_diffusers()
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(output))


def train_ddpm(
    images: Tensor,
    output: Path,
    settings: PriorTrainSettings,
    device: torch.device,
    callback: TrainCallback | None = None,
) -> list[float]:
    """Train on ``images`` (N, C, S, S) in [0, 1]; checkpoint to ``output`` every
    ``checkpoint_every`` steps and at the end. Returns the loss per step."""
    diffusers = import_diffusers()
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    unet = build_unet(images.shape[-1], images.shape[1], settings).to(device).train()
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=settings.num_train_timesteps)
    alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.lr)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, max(1, settings.steps // 20))
    losses: list[float] = []
    for step in range(1, settings.steps + 1):
        idx = torch.randint(0, images.shape[0], (settings.batch_size,), generator=generator)
        clean = images[idx].to(device) * 2 - 1
        if torch.rand((), generator=generator) < 0.5:
            clean = clean.flip(-1)
        noise = torch.randn(clean.shape, generator=generator).to(device)
        t = torch.randint(0, settings.num_train_timesteps, (clean.shape[0],), generator=generator)
        a = alphas[t.to(device)].view(-1, 1, 1, 1)
        noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
        loss = F.mse_loss(unet(noisy, t.to(device)).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        warmup.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, losses[-1])
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_pipeline(unet.eval(), scheduler, output)
            unet.train()
    return losses
