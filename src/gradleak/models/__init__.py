"""Models attacked by gradleak: registered builders, construction from config, checkpoints.

Nothing else in the library relies on a model's internals beyond its named parameters and
buffers, so any ``nn.Module`` mapping (B, C, H, W) images in [0, 1] to logits can be used; label
recovery only needs :func:`last_linear_names`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gradleak.config import ModelConfig
from gradleak.errors import ConfigError, GradleakError
from gradleak.models import convnet, lenet, mlp, resnet, text  # noqa: F401  (registers the builders)
from gradleak.models.base import MIN_IMAGE_SIZE, MODELS, ModelSpec, default_activation
from gradleak.models.layers import ACTIVATIONS, NORMS
from gradleak.models.text import TEXT_MODELS

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "NORMS",
    "TEXT_MODELS",
    "ModelSpec",
    "build_model",
    "default_activation",
    "last_linear_names",
    "load_checkpoint",
]


def build_model(
    cfg: ModelConfig,
    num_classes: int,
    channels: int,
    image_size: int,
    *,
    vocab_size: int = 0,
    seq_len: int = 0,
) -> nn.Module:
    """Build ``cfg.name`` for the data's shape and load ``cfg.checkpoint`` when one is given.

    A text model (``models.text.TEXT_MODELS``) takes the tokeniser's ``vocab_size`` and the
    data's ``seq_len`` instead of an image shape; each kind refuses the other's data.

    The activation is ``cfg.activation`` when set, otherwise (None) the model's
    literature default (sigmoid for ``lenet_dlg``, ReLU elsewhere): see :func:`default_activation`.
    """
    builder = MODELS.get(cfg.name)
    text_data = vocab_size > 0
    if (cfg.name in TEXT_MODELS) != text_data:
        kind = "text" if cfg.name in TEXT_MODELS else "image"
        raise ConfigError(
            f"model {cfg.name!r} is a {kind} model but data.name is "
            f"{'text' if text_data else 'images'}: choose a {'text' if text_data else 'image'} "
            f"model ({', '.join(sorted(TEXT_MODELS)) if text_data else 'e.g. convnet'})"
        )
    if not text_data and image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"model {cfg.name!r} needs data.image_size >= {MIN_IMAGE_SIZE}, got {image_size}"
        )
    spec = ModelSpec(
        num_classes=num_classes,
        channels=channels,
        image_size=image_size,
        activation=cfg.activation or default_activation(cfg.name),
        width=cfg.width,
        norm=cfg.norm,
        vocab_size=vocab_size,
        seq_len=seq_len,
    )
    model = builder(spec)
    if cfg.checkpoint is not None:
        load_checkpoint(model, cfg.checkpoint)
    return model


def load_checkpoint(model: nn.Module, path: Path) -> None:
    """Load a state dict (plain, or under a ``"state_dict"`` key) into ``model``, strictly.

    A missing file, an unreadable one or one made for another model is a user mistake and
    raises :class:`ConfigError` with one line saying which.
    """
    try:
        loaded = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"model checkpoint {path} does not exist") from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"model checkpoint {path} cannot be read: {reason}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ConfigError(f"model checkpoint {path} does not hold a state dict")
    problem = _state_dict_mismatch(model.state_dict(), loaded)
    if problem:
        raise ConfigError(f"model checkpoint {path} does not fit this model: {problem}")
    model.load_state_dict(loaded)


def _state_dict_mismatch(expected: dict[str, torch.Tensor], loaded: dict[str, object]) -> str:
    """A short description of how ``loaded`` differs from ``expected`` ("" when it fits)."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    if missing or unexpected:
        return f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}"
    for key, tensor in expected.items():
        value = loaded[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"{key} has shape {shape}, the model expects {tuple(tensor.shape)}"
    return ""


def last_linear_names(model: nn.Module) -> tuple[str, str | None]:
    """Parameter names (weight, bias or None) of the model's last ``nn.Linear`` layer.

    "Last" is in module registration order, which is the output layer for every sequential
    classifier; label recovery from gradients (iDLG and its batch variants) reads its gradient.
    """
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise GradleakError(
            "the model has no nn.Linear layer; label recovery needs a linear output layer"
        )
    name = linears[-1]
    layer = model.get_submodule(name)
    prefix = f"{name}." if name else ""
    return f"{prefix}weight", (f"{prefix}bias" if layer.bias is not None else None)
