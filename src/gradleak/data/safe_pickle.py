"""A pickle reader that refuses everything except plain numpy arrays.

The CIFAR "python version" files are pickles, and unpickling can run arbitrary code. A data set
a user downloaded or copied from somewhere should never be able to do that, so only the few
numpy globals that rebuild an array are resolved (and the two builtins pickle itself writes for
bytes, each only in that form); any other global is refused as a DataError.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gradleak.errors import DataError


def _numpy_core(submodule: str, name: str) -> Any:
    """A numpy internal, without touching the deprecated ``numpy.core`` alias on numpy 2."""
    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy < 2
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


def _refusal(path: Path, what: str, why: str) -> DataError:
    return DataError(
        f"refusing to load {path}: it references {what}, {why}; replace the file with an "
        "official copy"
    )


def _latin1_encode(path: Path) -> Callable[..., bytes]:
    """``_codecs.encode`` as pickle uses it for bytes below protocol 3, and in no other way.

    Python 3 pickles a ``bytes`` object (an array's raw data, a dict key) at protocols 0-2 as
    ``_codecs.encode(text, "latin1")``. Any other codec (``zlib``, ``hex``, ``rot13``, ...),
    argument type or count is not something numpy writes and is refused.
    """

    def encode(*args: object) -> bytes:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
            raise _refusal(
                path,
                f"_codecs.encode with arguments of types {[type(a).__name__ for a in args]}",
                "and only _codecs.encode(text, 'latin1') (pickle's form for bytes) is allowed",
            )
        return args[0].encode("latin1")

    return encode


def _empty_bytes(path: Path) -> Callable[..., bytes]:
    """``bytes()`` as pickle uses it for an empty bytes object below protocol 3 (an empty array's
    data): with no argument, so ``bytes(10**12)`` cannot allocate a terabyte."""

    def empty(*args: object) -> bytes:
        if args:
            raise _refusal(path, "builtins.bytes with arguments", "and only bytes() is allowed")
        return b""

    return empty


def _fixed(value: Callable[[], Any]) -> Callable[[Path], Any]:
    return lambda path: value()


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[Path], Any]] = {
    ("numpy", "ndarray"): _fixed(lambda: np.ndarray),
    ("numpy", "dtype"): _fixed(lambda: np.dtype),
    ("numpy.core.multiarray", "_reconstruct"): _fixed(
        lambda: _numpy_core("multiarray", "_reconstruct")
    ),
    ("numpy._core.multiarray", "_reconstruct"): _fixed(
        lambda: _numpy_core("multiarray", "_reconstruct")
    ),
    # protocol 5 pickles an array as _frombuffer(buffer, dtype, shape, order)
    ("numpy.core.numeric", "_frombuffer"): _fixed(lambda: _numpy_core("numeric", "_frombuffer")),
    ("numpy._core.numeric", "_frombuffer"): _fixed(lambda: _numpy_core("numeric", "_frombuffer")),
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,  # how protocol 2 spells builtins (fix_imports)
}
"""Every global a numpy-array pickle needs at any protocol, each mapped to what the unpickler
may call: numpy's array constructors as they are, and the two builtins pickle uses for bytes
only in the narrow form it writes them."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        factory = ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise _refusal(
                self._path,
                f"{module}.{name}",
                "and only numpy arrays are allowed in data set pickles",
            )
        return factory(self._path)


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only numpy arrays; a truncated or corrupt file is a DataError."""
    try:
        with open(path, "rb") as file:
            return _NumpyOnlyUnpickler(file, path).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # unpickling corrupt bytes can raise almost any error type
        raise DataError(
            f"{path} is truncated or corrupt ({type(exc).__name__}); replace it with a fresh copy"
        ) from None
