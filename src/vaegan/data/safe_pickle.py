"""Unpickling of untrusted CIFAR files: only what plain numpy arrays need may be loaded, nothing executable."""

from __future__ import annotations

import pickle
from pathlib import Path

from vaegan.errors import VaeganError

# Globals a pickled dict of numpy arrays, lists and strings can reference, from Python 2 or 3, numpy 1 or 2.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol-5 arrays
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes"),  # bytes written by Python 3 at protocol 2
})

# What a truncated or garbled pickle raises while loading.
_CORRUPT_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                          KeyError, OverflowError)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        # latin1 turns Python 2 `str` into text and lets numpy rebuild Python 2 array buffers.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise VaeganError(f"{self._path} is not a plain CIFAR pickle: it references {module}.{name}, "
                              "which is refused for safety")
        return super().find_class(module, name)


def load_untrusted_pickle(path: Path) -> object:
    """Load `path` allowing only numpy-array globals; any failure is a VaeganError naming the file."""
    try:
        with open(path, "rb") as file:
            return _ArrayOnlyUnpickler(file, path).load()
    except OSError as exc:
        raise VaeganError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except _CORRUPT_PICKLE_ERRORS as exc:
        raise VaeganError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
