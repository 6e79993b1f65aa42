"""ESRGAN's RRDBNet (Wang et al. 2018) as a plain torch module, loadable from ncnn layers.

Real-ESRGAN x4plus is this generator with 64 features, 23 residual-in-residual dense blocks
(RRDB) of growth 32 and two nearest ×2 upsamplings, on RGB in [0, 1]. It is differentiable, so
it can serve as a decoder that gradients flow through (the curious client optimises its ¼-size
input), and it has no normalisation layers, so batch size does not change its output.

:func:`load_ncnn` fills it from the Convolution layers of the ncnn export in file order. The
export's order is the forward order, which is also the order in which this module creates its
convolutions; every layer's output count, kernel count and fused activation is checked against
the convolution it lands in, so a reordered or different graph is a DataError, not garbage.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.errors import DataError
from gradleak.priors.ncnn import ConvWeights, NcnnLayer

SLOPE = 0.2
"""LeakyReLU negative slope throughout."""
RESIDUAL_SCALE = 0.2
"""Each dense block's and each RRDB's residual branch is scaled by this before the skip."""
LEAKY_ACTIVATION = 2
"""ncnn's ``9=`` activation type for LeakyReLU (its slope in array parameter 10)."""


def _conv(inputs: int, outputs: int) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 3, 1, 1)


class DenseBlock(nn.Module):
    """Five 3×3 convolutions, each seeing the block input and all earlier outputs."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _conv(features + i * growth, growth if i < 4 else features) for i in range(5)
        )

    def forward(self, x: Tensor) -> Tensor:
        seen = [x]
        for conv in self.convs[:-1]:
            seen.append(F.leaky_relu(conv(torch.cat(seen, 1)), SLOPE))
        return self.convs[-1](torch.cat(seen, 1)) * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks with a scaled residual around them."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """×4 super-resolution: features, RRDB trunk with a long skip, two ×2 upsamplings."""

    def __init__(
        self, channels: int = 3, features: int = 64, blocks: int = 23, growth: int = 32
    ) -> None:
        super().__init__()
        self.conv_first = _conv(channels, features)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = _conv(features, features)
        self.conv_up1 = _conv(features, features)
        self.conv_up2 = _conv(features, features)
        self.conv_hr = _conv(features, features)
        self.conv_last = _conv(features, channels)

    scale = 4

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), SLOPE))

    def conv_plan(self) -> list[tuple[nn.Conv2d, bool]]:
        """Every convolution in forward order, and whether a LeakyReLU follows it directly."""
        plan: list[tuple[nn.Conv2d, bool]] = [(self.conv_first, False)]
        for block in self.modules():
            if isinstance(block, DenseBlock):
                convs = [c for c in block.convs if isinstance(c, nn.Conv2d)]
                plan += [(conv, i < 4) for i, conv in enumerate(convs)]
        plan += [(self.conv_body, False), (self.conv_up1, True), (self.conv_up2, True)]
        return [*plan, (self.conv_hr, True), (self.conv_last, False)]


def _check_conv(layer: NcnnLayer, conv: nn.Conv2d, leaky: bool) -> None:
    """The ncnn layer has exactly this convolution's geometry and fused activation."""
    out_channels, in_channels, kh, kw = conv.weight.shape
    geometry = {
        "outputs (0)": (layer.int_param(0, 0), out_channels),
        "kernel (1)": (layer.int_param(1, 0), kh),
        "kernel height (11)": (layer.int_param(11, layer.int_param(1, 0)), kh),
        "dilation (2)": (layer.int_param(2, 1), 1),
        "stride (3)": (layer.int_param(3, 1), 1),
        "padding (4)": (layer.int_param(4, 0), 1),
        "bias (5)": (layer.int_param(5, 0), 1),
        "weight count (6)": (layer.int_param(6, 0), out_channels * in_channels * kh * kw),
        "activation (9)": (layer.int_param(9, 0), LEAKY_ACTIVATION if leaky else 0),
    }
    for what, (got, expected) in geometry.items():
        if got != expected or kh != kw:
            raise DataError(
                f"ncnn layer {layer.name}: {what} is {got}, RRDBNet needs {expected} there"
            )
    if leaky and layer.array_param(10) != (SLOPE,):
        raise DataError(f"ncnn layer {layer.name}: LeakyReLU slope is not {SLOPE}")


def _check_graph(layers: list[NcnnLayer], blocks: int) -> None:
    """The weightless layers say what the module hard-codes: scaled residuals, nearest ×2."""
    residuals = [layer for layer in layers if layer.type == "Eltwise"]
    if len(residuals) != 4 * blocks or any(
        layer.int_param(0, -1) != 1 or layer.array_param(1) != (RESIDUAL_SCALE, 1.0)
        for layer in residuals
    ):
        raise DataError(
            f"the ncnn graph's residual sums are not the {4 * blocks} "
            f"'{RESIDUAL_SCALE}·branch + skip' of RRDBNet"
        )
    upsamplings = [layer for layer in layers if layer.type == "Interp"]
    if len(upsamplings) != 2 or any(
        layer.int_param(0, -1) != 1 or layer.params.get(1) != 2.0 or layer.params.get(2) != 2.0
        for layer in upsamplings
    ):
        raise DataError("the ncnn graph does not upsample twice by nearest ×2")


def load_ncnn(
    layers: list[NcnnLayer], weights: dict[str, ConvWeights], blocks: int = 23
) -> RRDBNet:
    """An RRDBNet whose convolutions are the ncnn export's, in order, each checked by shape."""
    net = RRDBNet(blocks=blocks)
    plan = net.conv_plan()
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) != len(plan):
        raise DataError(
            f"the ncnn graph has {len(convs)} convolutions; RRDBNet x4 with {blocks} blocks "
            f"has {len(plan)}"
        )
    _check_graph(layers, blocks)
    with torch.no_grad():
        for layer, (conv, leaky) in zip(convs, plan, strict=True):
            _check_conv(layer, conv, leaky)
            found = weights.get(layer.name)
            if found is None or found.bias is None:
                raise DataError(f"ncnn layer {layer.name}: no weights and bias were read")
            conv.weight.copy_(torch.from_numpy(np.asarray(found.weight)).view_as(conv.weight))
            assert conv.bias is not None  # every _conv has one
            conv.bias.copy_(torch.from_numpy(np.asarray(found.bias)))
    return net.eval().requires_grad_(False)
