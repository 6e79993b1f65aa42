"""The ncnn reader and RRDBNet loader on hand-written files (offline, fast): a tiny RRDBNet
written out in ncnn's format reads back to the same network, and malformed files are one
DataError each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradleak.errors import DataError
from gradleak.priors.ncnn import FP16_FLAG, parse_param, read_bin
from gradleak.priors.rrdbnet import RRDBNet, load_ncnn


def conv_line(name: str, conv: nn.Conv2d, leaky: bool) -> str:
    out_c, in_c, k, _ = conv.weight.shape
    act = " 9=2 -23310=1,2.000000e-01" if leaky else ""
    return (
        f"Convolution {name} 1 1 in_{name} out_{name} 0={out_c} 1={k} 4=1 5=1 "
        f"6={out_c * in_c * k * k}{act}"
    )


def export(net: RRDBNet, blocks: int, fp16: bool = True) -> tuple[bytes, bytes]:
    """``net`` as an ncnn (.param, .bin) pair, convolutions in forward order."""
    lines = ["Input input 0 1 data"]
    weights = bytearray()
    for index, (conv, leaky) in enumerate(net.conv_plan()):
        lines.append(conv_line(f"Conv_{index}", conv, leaky))
        kernel = conv.weight.detach().numpy().ravel()
        if fp16:
            raw = kernel.astype("<f2").tobytes()
            weights += FP16_FLAG.to_bytes(4, "little") + raw + b"\0" * (-len(raw) % 4)
        else:
            weights += (0).to_bytes(4, "little") + kernel.astype("<f4").tobytes()
        assert conv.bias is not None
        weights += conv.bias.detach().numpy().astype("<f4").tobytes()
    lines += [
        f"Eltwise add_{i} 2 1 a_{i} b_{i} c_{i} 0=1 -23301=2,2.000000e-01,1.000000e+00"
        for i in range(4 * blocks)
    ]
    lines += [f"Interp up_{i} 1 1 u_{i} v_{i} 0=1 1=2.000000e+00 2=2.000000e+00" for i in range(2)]
    param = "\n".join(["7767517", f"{len(lines)} {len(lines) + 1}", *lines]) + "\n"
    return param.encode(), bytes(weights)


@pytest.fixture(scope="module")
def tiny() -> tuple[RRDBNet, bytes, bytes]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = RRDBNet(blocks=1).eval()
    param, weights = export(net, 1)
    return net, param, weights


@pytest.mark.parametrize("fp16", [True, False])
def test_exported_network_reads_back_to_the_same_outputs(fp16: bool) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = RRDBNet(blocks=1).eval()
        x = torch.rand(2, 3, 6, 5)
    param, weights = export(net, 1, fp16)
    layers = parse_param(param)
    loaded = load_ncnn(layers, read_bin(weights, layers), blocks=1)
    with torch.no_grad():
        expected, got = net(x), loaded(x)
    assert got.shape == (2, 3, 24, 20)
    tolerance = 2e-2 if fp16 else 1e-5
    assert torch.allclose(got, expected, atol=tolerance), float((got - expected).abs().max())
    assert not any(p.requires_grad for p in loaded.parameters())


def test_decoder_is_differentiable_in_its_input(tiny: tuple[RRDBNet, bytes, bytes]) -> None:
    _, param, weights = tiny
    layers = parse_param(param)
    net = load_ncnn(layers, read_bin(weights, layers), blocks=1)
    latent = torch.rand(1, 3, 4, 4, requires_grad=True)
    net(latent).square().mean().backward()
    assert latent.grad is not None and float(latent.grad.abs().sum()) > 0


def test_layers_in_another_order_are_refused(tiny: tuple[RRDBNet, bytes, bytes]) -> None:
    _, param, weights = tiny
    lines = param.decode().splitlines()
    lines[3], lines[8] = lines[8], lines[3]  # a growth-32 conv swapped with a 64-output one
    swapped = parse_param("\n".join(lines).encode())
    with pytest.raises(DataError):  # the .bin is then read from the wrong offsets
        read_bin(weights, swapped)
    with pytest.raises(DataError, match="RRDBNet needs"):
        load_ncnn(swapped, read_bin(weights, parse_param(param)), blocks=1)


def test_a_missing_activation_is_refused(tiny: tuple[RRDBNet, bytes, bytes]) -> None:
    _, param, weights = tiny
    text = param.decode().replace(" 9=2 -23310=1,2.000000e-01", "", 1)
    layers = parse_param(text.encode())
    with pytest.raises(DataError, match="activation"):
        load_ncnn(layers, read_bin(weights, layers), blocks=1)


def test_wrong_block_count_is_refused(tiny: tuple[RRDBNet, bytes, bytes]) -> None:
    _, param, weights = tiny
    layers = parse_param(param)
    with pytest.raises(DataError, match="convolutions"):
        load_ncnn(layers, read_bin(weights, layers), blocks=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"\xff\xfe", "not ASCII"),
        (b"7767518\n1 1\nInput in 0 1 data\n", "magic"),
        (b"7767517\n2 2\nInput in 0 1 data\n", "declares 2 layers"),
        (b"7767517\n1 1\nInput in 0 9 data\n", "blob names"),
        (b"7767517\n1 1\nInput in 0 1 data 0=abc\n", "not a number"),
        (b"7767517\n1 1\nInput in 0 1 data 0=1 0=2\n", "given twice"),
        (b"7767517\n1 1\nInput in 0 1 data -23301=3,1.0\n", "wrong length"),
        (b"7767517\n1 1\nInput in 0 1 data 1=inf\n", "not a number"),
        (b"7767517\n2 2\nInput a 0 1 x\nInput a 0 1 y\n", "not unique"),
        (b"7767517\n0 0\n", "out of range"),
    ],
)
def test_malformed_param_is_one_data_error(text: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_param(text, "model.param")


def test_bin_values_and_hostile_bins() -> None:
    layers = parse_param(b"7767517\n1 2\nConvolution c 1 1 a b 0=2 1=1 5=1 6=4\n")
    kernel = np.array([1.5, -2.0, 0.25, 3.0], dtype="<f2").tobytes()
    bias = np.array([0.5, -1.0], dtype="<f4").tobytes()
    good = FP16_FLAG.to_bytes(4, "little") + kernel + bias
    read = read_bin(good, layers)["c"]
    assert read.weight.tolist() == [1.5, -2.0, 0.25, 3.0]
    assert read.bias is not None and read.bias.tolist() == [0.5, -1.0]
    with pytest.raises(DataError, match="ends at byte"):
        read_bin(good[:-1], layers)
    with pytest.raises(DataError, match="bytes after"):
        read_bin(good + b"\0\0\0\0", layers)
    with pytest.raises(DataError, match="storage flag"):
        read_bin(b"\x01\x02\x03\x04" + good[4:], layers)
    nan = np.array([np.nan, 0, 0, 0], dtype="<f2").tobytes()
    with pytest.raises(DataError, match="NaN"):
        read_bin(FP16_FLAG.to_bytes(4, "little") + nan + bias, layers)
    with pytest.raises(DataError, match="not supported"):
        read_bin(good, parse_param(b"7767517\n1 2\nPooling p 1 1 a b\n"))
    with pytest.raises(DataError, match="weights for"):
        read_bin(good, parse_param(b"7767517\n1 2\nConvolution c 1 1 a b 0=3 6=4\n"))
