"""Model builders: shapes, activation choice, functional use, checkpoints, label-layer lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call

from gradleak.config import ModelConfig
from gradleak.errors import ConfigError, GradleakError, UnknownNameError
from gradleak.models import MODELS, build_model, last_linear_names
from gradleak.models.base import ModelSpec

NAMES = ["lenet_dlg", "lenet_rog", "lenet5", "convnet", "resnet18", "mlp"]
"""Builders that take any size from 16 (resnet18_imagenet needs 64: tests/models/test_resnet_imagenet.py)."""


def small(name: str, **fields: object) -> ModelConfig:
    """Narrow models keep the resnet cases fast; widths do not change the code paths."""
    return ModelConfig(name=name, width=4, **fields)  # type: ignore[arg-type]


def test_registered_names() -> None:
    assert set(NAMES) <= set(MODELS.names())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_output_shape(name: str, channels: int, size: int) -> None:
    model = build_model(small(name), num_classes=7, channels=channels, image_size=size)
    assert model(torch.rand(2, channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm", "none"])
@pytest.mark.parametrize("name", ["convnet", "resnet18"])
def test_norm_choice(name: str, norm: str) -> None:
    model = build_model(small(name, norm=norm), 10, 3, 32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    has_gn = any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert (has_bn, has_gn) == (norm == "batchnorm", norm == "groupnorm")


@pytest.mark.parametrize("name", NAMES)
def test_activation_choice_changes_modules(name: str) -> None:
    model = build_model(small(name, activation="tanh"), 10, 3, 32)
    assert any(isinstance(m, nn.Tanh) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU | nn.Sigmoid) for m in model.modules())


def test_lenet_dlg_defaults_to_sigmoid_unless_chosen() -> None:
    default = build_model(ModelConfig(name="lenet_dlg"), 10, 3, 32)
    chosen = build_model(ModelConfig(name="lenet_dlg", activation="relu"), 10, 3, 32)
    assert any(isinstance(m, nn.Sigmoid) for m in default.modules())
    assert any(isinstance(m, nn.ReLU) for m in chosen.modules())
    assert not any(isinstance(m, nn.Sigmoid) for m in chosen.modules())


def test_lenet_dlg_matches_the_dlg_layout() -> None:
    model = build_model(ModelConfig(name="lenet_dlg"), 100, 3, 32)
    head_weight, _ = last_linear_names(model)
    assert dict(model.named_parameters())[head_weight].shape == (100, 768)
    assert all(p.abs().max() <= 0.5 for p in model.parameters())


def test_lenet_rog_matches_the_rog_layout() -> None:
    """The curious-client paper's LeNet: 32 and 64 5x5 channels, a bias-free 4096 → 512 → C head."""
    model = build_model(ModelConfig(name="lenet_rog"), 10, 3, 32)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert sorted(shapes.values()) == sorted(
        [(32, 3, 5, 5), (32,), (64, 32, 5, 5), (64,), (512, 4096), (10, 512)]
    )
    assert last_linear_names(model) == ("9.weight", None)
    assert any(isinstance(m, nn.ReLU) for m in model.modules())


def test_unknown_activation_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"known: .*sigmoid"):
        build_model(small("convnet", activation="swishy"), 10, 3, 32)


def test_unknown_model_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="lenet_dlg"):
        build_model(ModelConfig(name="vit"), 10, 3, 32)


def test_too_small_images_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="image_size >= 16"):
        build_model(small("convnet"), 10, 3, 8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_functional_call_matches_module(name: str, train: bool) -> None:
    torch.manual_seed(0)
    model = build_model(small(name), 10, 3, 32).train(train)
    x = torch.rand(4, 3, 32, 32)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    state = {k: v.detach().clone() for k, v in state.items()}
    functional = functional_call(model, state, (x,))
    torch.testing.assert_close(functional, model(x))


@pytest.mark.parametrize("name", ["lenet_dlg", "mlp", "convnet"])
def test_vmap_over_parameter_sets(name: str) -> None:
    model = build_model(small(name, norm="groupnorm"), 10, 1, 16).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    stacked = {k: torch.stack([v, 2 * v]) for k, v in params.items()}
    x = torch.rand(2, 1, 16, 16)
    out = torch.func.vmap(lambda p: functional_call(model, (p, buffers), (x,)))(stacked)
    torch.testing.assert_close(out[0], model(x))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = build_model(small("convnet"), 10, 3, 32)
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_model(small("convnet", checkpoint=path), 10, 3, 32)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_checkpoint_under_state_dict_key(tmp_path: Path) -> None:
    source = build_model(small("mlp"), 10, 1, 16)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    loaded = build_model(small("mlp", checkpoint=path), 10, 1, 16)
    torch.testing.assert_close(loaded.state_dict()["1.weight"], source.state_dict()["1.weight"])


def test_checkpoint_for_another_model_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(build_model(small("convnet"), 10, 3, 32).state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit") as info:
        build_model(small("convnet", checkpoint=path), 100, 3, 32)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="missing keys"):
        build_model(small("mlp", checkpoint=path), 10, 3, 32)


def test_missing_or_corrupt_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(small("mlp", checkpoint=tmp_path / "nope.pt"), 10, 1, 16)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read") as info:
        build_model(small("mlp", checkpoint=corrupt), 10, 1, 16)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_last_linear_names_point_at_the_logits_layer(name: str) -> None:
    model = build_model(small(name), 10, 3, 32)
    weight, bias = last_linear_names(model)
    params = dict(model.named_parameters())
    assert params[weight].shape[0] == 10
    assert (bias is None) == (name == "lenet_rog")  # ROG's LeNet has bias-free linear layers
    assert bias is None or params[bias].shape == (10,)


def test_last_linear_names_on_user_modules() -> None:
    class UserNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
            self.head = nn.Linear(5, 3, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    assert last_linear_names(UserNet()) == ("head.weight", None)
    assert last_linear_names(nn.Linear(4, 2)) == ("weight", "bias")
    with pytest.raises(GradleakError, match=r"no nn\.Linear"):
        last_linear_names(nn.Conv2d(1, 1, 1))


def test_builders_take_a_spec_directly() -> None:
    """The smallest supported size (16) through every builder, with a non-default activation."""
    spec = ModelSpec(num_classes=5, channels=1, image_size=16, activation="elu", width=2)
    for name in NAMES:
        assert MODELS.get(name)(spec)(torch.rand(1, 1, 16, 16)).shape == (1, 5)
