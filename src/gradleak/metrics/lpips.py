"""LPIPS (Zhang et al. 2018), v0.1, without torchvision or the ``lpips`` package.

Scoring never downloads anything. Weights are looked for, in this order:

1. ``metrics.lpips_weights`` when configured (heads only, or a combined checkpoint);
2. gradleak's own combined checkpoint ``lpips_<backbone>.pt`` in :func:`weights_dir`
   (``$GRADLEAK_WEIGHTS``, else ``$XDG_CACHE_HOME/gradleak/weights``, else
   ``~/.cache/gradleak/weights``), which ``gradleak weights fetch lpips`` installs;
3. the official heads ``lpips_<backbone>_v0.1.pth`` plus torchvision's backbone checkpoint in the
   torch hub cache (``$TORCH_HOME/hub/checkpoints``).

When none is there, :meth:`LPIPS.load` logs one notice and returns None, and scores carry
``lpips_mean: null``.

Images smaller than 32 pixels are upsampled bilinearly to 32 first: AlexNet's three poolings
need at least 31 pixels, and 32 is CIFAR's native size, at which LPIPS is usually reported.
"""

from __future__ import annotations

import logging
import os
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gradleak.errors import ConfigError, DataError
from gradleak.metrics.backbones import BACKBONES

log = logging.getLogger(__name__)

MIN_SIDE = 32
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10


def hub_checkpoints() -> Path:
    """torch's hub cache for checkpoints (``$TORCH_HOME/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_dir() -> Path:
    """gradleak's own folder for converted weights: ``$GRADLEAK_WEIGHTS`` or a user cache dir."""
    configured = os.environ.get("GRADLEAK_WEIGHTS")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "gradleak" / "weights"


def installed_path(backbone: str) -> Path:
    """The combined (backbone + heads) checkpoint that ``gradleak weights fetch lpips`` writes."""
    return weights_dir() / f"lpips_{backbone}.pt"


def default_head_path(backbone: str) -> Path:
    """Where the linear heads are looked for when no path is configured."""
    return hub_checkpoints() / f"lpips_{backbone}_v0.1.pth"


class LinearHead(nn.Module):
    """A 1x1 convolution to one channel, laid out as the official ``NetLinLayer``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """Learned perceptual distance per image pair, shape (B,); lower means more alike.

    Its state dict is the backbone's ``features.*`` keys plus ``lin0..lin4``; a file holding
    both is accepted as a single combined checkpoint.
    """

    def __init__(self, backbone: str = "alex") -> None:
        super().__init__()
        spec = BACKBONES.get(backbone)
        self.backbone = backbone
        self.taps = spec.taps
        self.features = spec.build()
        self.head_names = tuple(f"lin{index}" for index in range(len(spec.channels)))
        for name, channels in zip(self.head_names, spec.channels, strict=True):
            self.add_module(name, LinearHead(channels))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()
        self.requires_grad_(False)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if min(images.shape[-2:]) < MIN_SIDE:
            images = F.interpolate(images, size=(MIN_SIDE, MIN_SIDE), mode="bilinear")
        shift = self.get_buffer("shift")
        scale = self.get_buffer("scale")
        return (2 * images - 1 - shift) / scale

    def _feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        out = images
        for index, layer in enumerate(islice(self.features, self.taps[-1] + 1)):
            out = layer(out)
            if index in self.taps:
                maps.append(out / (out.pow(2).sum(1, keepdim=True).sqrt() + NORM_EPS))
        return maps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance between images ``x`` and ``y`` in [0, 1], both (B, C, H, W)."""
        maps_x = self._feature_maps(self._prepare(x))
        maps_y = self._feature_maps(self._prepare(y))
        layers = [
            self.get_submodule(name)((fx - fy).pow(2)).mean(dim=(1, 2, 3))
            for name, fx, fy in zip(self.head_names, maps_x, maps_y, strict=True)
        ]
        return torch.stack(layers).sum(0)

    @classmethod
    def load(cls, backbone: str = "alex", weights_path: Path | None = None) -> LPIPS | None:
        """LPIPS with pretrained weights, or None (and one logged notice) when they are absent.

        ``weights_path`` is the linear heads' file (or a combined checkpoint); when None, the
        installed checkpoint (:func:`installed_path`) is used if present, else the official heads
        at :func:`default_head_path`. A configured path that does not exist is a user mistake and
        raises :class:`ConfigError`.
        """
        spec = BACKBONES.get(backbone)
        if weights_path is not None and not Path(weights_path).expanduser().is_file():
            raise ConfigError(f"metrics.lpips_weights: {weights_path} does not exist")
        if weights_path is None and installed_path(backbone).is_file():
            weights_path = installed_path(backbone)
        head_path = Path(weights_path).expanduser() if weights_path else default_head_path(backbone)
        if not head_path.is_file():
            _notice(f"LPIPS linear heads {head_path.name}", head_path)
            return None
        state = _read(head_path)
        if not any(key.startswith("features.") for key in state):
            backbone_path = hub_checkpoints() / spec.checkpoint
            if not backbone_path.is_file():
                _notice(f"LPIPS backbone {spec.checkpoint}", backbone_path)
                return None
            features = {k: v for k, v in _read(backbone_path).items() if k.startswith("features.")}
            state = {**features, **state}
        model = cls(backbone)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise DataError(f"LPIPS weights for {backbone!r} do not fit: {first}") from None
        return model


def _notice(what: str, path: Path) -> None:
    log.warning(
        "lpips_mean is null: %s not found at %s; run `gradleak weights fetch lpips` to install it",
        what,
        path,
    )


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read LPIPS weights {path}: {exc}".splitlines()[0]) from None
    if not isinstance(state, dict):
        raise DataError(f"LPIPS weights {path} do not hold a state dict")
    return state
