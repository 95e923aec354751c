"""Unpickling of untrusted CIFAR files: only what plain numpy arrays need may be loaded, nothing executable."""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy

from vaegan.errors import VaeganError

# Globals a pickled dict of numpy arrays, lists and strings can reference, from Python 2 or 3, numpy 1 or 2.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol-5 arrays
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes"),  # bytes written by Python 3 at protocol 2
})

# What a truncated or garbled pickle raises while loading; LookupError covers a memo or stack miss and a codec
# name `_codecs.encode` does not know, MemoryError an allowed constructor asked for an absurd size (`bytes(2**40)`).
_CORRUPT_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
                          OverflowError, MemoryError)
_BYTE_ORDERS = ("<", ">", "|", "=")


class _ArrayOnlyUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (about 0.1 s slower per CIFAR batch file), because only it lets BUILD be checked."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: Path):
        # latin1 turns Python 2 `str` into text and lets numpy rebuild Python 2 array buffers.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise VaeganError(f"{self._path} is not a plain CIFAR pickle: it references {module}.{name}, "
                              "which is refused for safety")
        return super().find_class(module, name)

    def _load_build(self) -> None:
        """numpy's dtype.__setstate__ trusts its argument and a garbled one crashes the interpreter, so a dtype
        may only be given the state numpy itself writes for it, byte order aside."""
        target, state = self.stack[-2], self.stack[-1]
        if isinstance(target, numpy.dtype):
            own = target.__reduce__()[2]
            if not (isinstance(state, tuple) and len(state) == len(own) and state[1] in _BYTE_ORDERS
                    and state[:1] + state[2:] == own[:1] + own[2:]):
                raise pickle.UnpicklingError(f"unexpected state for numpy dtype {target}: {state!r:.100}")
        self.load_build()

    dispatch[pickle.BUILD[0]] = _load_build


def load_untrusted_pickle(path: Path) -> object:
    """Load `path` allowing only numpy-array globals; any failure is a VaeganError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VaeganError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        _check_lengths(data)
        return _ArrayOnlyUnpickler(io.BytesIO(data), path).load()
    except _CORRUPT_PICKLE_ERRORS as exc:
        raise VaeganError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc


def _check_lengths(data: bytes) -> None:
    """Walk the opcodes once, reading each argument out of `data`: a length that claims more bytes than the file
    holds fails here with a ValueError, where unpicklers allocate it before reading (BYTEARRAY8 in Python, all
    counted strings in C)."""
    for _ in pickletools.genops(data):
        pass
