"""Reading an ncnn model: the ``.param`` layer list and the ``.bin`` weights it implies.

ncnn (Tencent's inference library) stores a network as two files. The ``.param`` text starts
with the magic number 7767517, then ``layer_count blob_count``, then one line per layer::

    Type  name  n_in n_out  in_blob... out_blob...  key=value ...

where an integer key ``k`` holds an int or a float, and a key ``-23300 - k`` holds an array
``len,v1,v2,...`` for parameter ``k``. The ``.bin`` has no header or index: it is the weights
of every layer that has any, concatenated in layer order, each layer reading what its type
needs. A Convolution reads its kernel (``6=`` values, laid out out × in × kh × kw like torch's)
behind a 4-byte storage flag (fp16, fp32 or quantised), padded to 4 bytes, then, when ``5=1``,
``0=`` raw float32 biases with no flag.

Only what Real-ESRGAN's graph uses is understood: Convolution weights, and the weightless
Input, Split, Concat, Eltwise, BinaryOp and Interp. Any other layer type is refused, since
its weights' size is unknown and every later layer would be read from the wrong offset. The
files are untrusted: every count is bounded by the bytes actually present before anything is
allocated, and a malformed file is one :class:`DataError` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gradleak.errors import DataError

MAGIC = 7767517
MAX_PARAM_BYTES = 4 * 1024 * 1024
MAX_BIN_BYTES = 512 * 1024 * 1024
MAX_LAYERS = 100_000
MAX_BLOBS_PER_LAYER = 1024
MAX_ARRAY = 4096
ARRAY_KEY_BASE = -23300

FP16_FLAG = 0x01306B47
FP32_FLAG = 0x00000000

WEIGHTLESS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"})
"""Layer types that read nothing from the ``.bin``."""

ParamValue = int | float | tuple[float, ...]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME = re.compile(r"[\w.:/\-]+")


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]

    def int_param(self, key: int, default: int) -> int:
        """Parameter ``key`` as an int (its default when absent); a DataError if it is not."""
        value = self.params.get(key, default)
        if not isinstance(value, int):
            raise DataError(f"ncnn layer {self.name}: parameter {key} is not an integer")
        return value

    def array_param(self, key: int) -> tuple[float, ...]:
        """Array parameter ``key`` (written ``-233xx=``); empty when absent."""
        value = self.params.get(key, ())
        if not isinstance(value, tuple):
            raise DataError(f"ncnn layer {self.name}: parameter {key} is not an array")
        return value


@dataclass(frozen=True)
class ConvWeights:
    """A Convolution layer's weights as float32: the flat kernel and the bias (or None)."""

    weight: np.ndarray
    bias: np.ndarray | None


def _number(text: str, where: str) -> int | float:
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not np.isfinite(value):
            raise DataError(f"{where}: value {text!r} is not finite")
        return value
    raise DataError(f"{where}: {text!r} is not a number")


def _parse_params(pairs: list[str], where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for pair in pairs:
        key_text, sep, value_text = pair.partition("=")
        if not sep or not _INT.fullmatch(key_text):
            raise DataError(f"{where}: {pair[:40]!r} is not key=value")
        key = int(key_text)
        if key <= ARRAY_KEY_BASE:
            key = ARRAY_KEY_BASE - key
            parts = value_text.split(",")
            count = _number(parts[0], where)
            if not isinstance(count, int) or not 0 <= count <= MAX_ARRAY or count != len(parts) - 1:
                raise DataError(f"{where}: array parameter {key} has a wrong length")
            value: ParamValue = tuple(float(_number(p, where)) for p in parts[1:])
        else:
            value = _number(value_text, where)
        if key in params:
            raise DataError(f"{where}: parameter {key} is given twice")
        params[key] = value
    return params


def _parse_layer(fields: list[str], where: str) -> NcnnLayer:
    if len(fields) < 4 or not _INT.fullmatch(fields[2]) or not _INT.fullmatch(fields[3]):
        raise DataError(f"{where}: expected 'Type name inputs outputs ...'")
    n_in, n_out = int(fields[2]), int(fields[3])
    if not (0 <= n_in <= MAX_BLOBS_PER_LAYER and 0 <= n_out <= MAX_BLOBS_PER_LAYER):
        raise DataError(f"{where}: blob counts {n_in}, {n_out} are out of range")
    blobs = fields[4 : 4 + n_in + n_out]
    if len(blobs) != n_in + n_out or not all(_NAME.fullmatch(b) for b in blobs):
        raise DataError(f"{where}: expected {n_in} input and {n_out} output blob names")
    if not _NAME.fullmatch(fields[0]) or not _NAME.fullmatch(fields[1]):
        raise DataError(f"{where}: bad layer type or name")
    params = _parse_params(fields[4 + n_in + n_out :], where)
    return NcnnLayer(fields[0], fields[1], tuple(blobs[:n_in]), tuple(blobs[n_in:]), params)


def parse_param(data: bytes, source: str = ".param") -> list[NcnnLayer]:
    """The layers of a ``.param`` file, in file order; a DataError naming the line if bad."""
    if len(data) > MAX_PARAM_BYTES:
        raise DataError(f"{source} is over {MAX_PARAM_BYTES} bytes; not an ncnn .param")
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{source} is not ASCII text; not an ncnn .param") from None
    if not lines or lines[0].strip() != str(MAGIC):
        raise DataError(f"{source} does not start with the ncnn magic {MAGIC}")
    header = lines[1].split() if len(lines) > 1 else []
    if len(header) != 2 or not all(_INT.fullmatch(h) for h in header):
        raise DataError(f"{source} line 2: expected 'layer_count blob_count'")
    count = int(header[0])
    if not 0 < count <= MAX_LAYERS:
        raise DataError(f"{source} line 2: layer count {count} is out of range")
    body = [(number, line.split()) for number, line in enumerate(lines[2:], start=3)]
    body = [(number, fields) for number, fields in body if fields]
    if len(body) != count:
        raise DataError(f"{source} declares {count} layers but has {len(body)} layer lines")
    layers = [_parse_layer(fields, f"{source} line {number}") for number, fields in body]
    if len({layer.name for layer in layers}) != len(layers):
        raise DataError(f"{source}: layer names are not unique")
    return layers


class _Cursor:
    """Reads little-endian arrays from the ``.bin``, never past its end."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.offset = 0
        self.source = source

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise DataError(
                f"{self.source} ends at byte {len(self.data)} inside {what} "
                f"(needs {size} bytes at {self.offset}); it does not match the .param"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def flagged(self, count: int, what: str) -> np.ndarray:
        """An array of ``count`` values behind ncnn's 4-byte storage flag."""
        flag = int.from_bytes(self.take(4, f"the storage flag of {what}"), "little")
        if flag == FP16_FLAG:
            raw = self.take((count * 2 + 3) // 4 * 4, what)
            values = np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        elif flag == FP32_FLAG:
            values = np.frombuffer(self.take(count * 4, what), dtype="<f4").astype(np.float32)
        else:
            raise DataError(
                f"{self.source}: {what} has storage flag 0x{flag:08x}; only fp16 and fp32 "
                "weights are read (not quantised ones)"
            )
        return self._finite(values, what)

    def raw_float32(self, count: int, what: str) -> np.ndarray:
        values = np.frombuffer(self.take(count * 4, what), dtype="<f4").astype(np.float32)
        return self._finite(values, what)

    def _finite(self, values: np.ndarray, what: str) -> np.ndarray:
        if not np.isfinite(values).all():
            raise DataError(f"{self.source}: {what} holds NaN or infinite values")
        return values


def read_bin(data: bytes, layers: list[NcnnLayer], source: str = ".bin") -> dict[str, ConvWeights]:
    """Every Convolution's weights (by layer name, in layer order) from the ``.bin`` bytes.

    The whole file must be accounted for: bytes left over mean the ``.param`` and ``.bin``
    do not belong together (or a layer holds weights this reader does not know of).
    """
    if len(data) > MAX_BIN_BYTES:
        raise DataError(f"{source} is over {MAX_BIN_BYTES} bytes; not this model's weights")
    cursor = _Cursor(data, source)
    weights: dict[str, ConvWeights] = {}
    for layer in layers:
        if layer.type in WEIGHTLESS:
            continue
        if layer.type != "Convolution":
            raise DataError(f"ncnn layer {layer.name}: type {layer.type} is not supported")
        outputs = layer.int_param(0, 0)
        count = layer.int_param(6, 0)
        if outputs <= 0 or count <= 0 or count % outputs:
            raise DataError(f"ncnn layer {layer.name}: {count} weights for {outputs} outputs")
        kernel = cursor.flagged(count, f"the kernel of {layer.name}")
        has_bias = layer.int_param(5, 0)
        if has_bias not in (0, 1):
            raise DataError(f"ncnn layer {layer.name}: bias term {has_bias} is not 0 or 1")
        bias = cursor.raw_float32(outputs, f"the bias of {layer.name}") if has_bias else None
        weights[layer.name] = ConvWeights(kernel, bias)
    if cursor.offset != len(data):
        raise DataError(
            f"{source} has {len(data) - cursor.offset} bytes after the last layer's weights; "
            "it does not match the .param"
        )
    return weights
