"""A pickle reader that refuses everything except plain numpy arrays.

The CIFAR "python version" files are pickles, and unpickling can run arbitrary code. A data set
a user downloaded or copied from somewhere should never be able to do that, so only the few
numpy globals that rebuild an array are resolved; any other global is refused as a DataError.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

from gradleak.errors import DataError

_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


def _resolve(module: str, name: str) -> Any:
    """The numpy object itself, without touching the deprecated ``numpy.core`` alias."""
    if module == "numpy":
        return getattr(importlib.import_module("numpy"), name)
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    return getattr(multiarray, name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(
                f"refusing to load {self._path}: it references {module}.{name}, and only numpy "
                "arrays are allowed in data set pickles; replace the file with an official copy"
            )
        return _resolve(module, name)


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
