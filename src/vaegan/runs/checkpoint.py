"""Crash-safe checkpoints: written atomically with a checksum, read back verified and with `weights_only=True`.

A checkpoint holds everything needed to continue a run bit-exactly on CPU: model and optimiser state, every
RNG state, the data-order position (epoch, batch within it), the step, the resolved config, and how far
`metrics.jsonl` had been written (so a resumed run drops the lines logged after the checkpoint).
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import random
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaegan.errors import VaeganError
from vaegan.runs.files import atomic_write_all

FORMAT = "vaegan-checkpoint"
VERSION = 2  # a checksummed container around the payload (see write_checkpoint)
# What resuming needs; a file without these keys is refused as incomplete.
TRAINING_KEYS = ("config", "step", "epoch", "batch", "model", "optimizer", "rng", "metrics_offset")


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # numpy's state holds an ndarray, which weights_only loading refuses; store it as plain values.
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def _as_tuples(value: Any) -> Any:
    """random.setstate wants the nested tuples it produced; a round trip may hand back lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _refusal(path: Path, err: pickle.UnpicklingError) -> VaeganError:
    """Why a file was refused, without torch's hint to retry with weights_only=False: for a hostile file that
    advice means running its code."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    what = f"it references {found.group(1)}" if found else "it holds objects other than tensors and plain values"
    return VaeganError(f"refusing to load {path}: {what}; vaegan only reads files of plain weights")


def _load_weights_only(source, path: Path, map_location, corrupt: str) -> Any:
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, TypeError,
            IndexError, AttributeError, MemoryError, UnicodeDecodeError):
        raise VaeganError(corrupt) from None


def write_checkpoint(path: Path, payload: dict[str, Any], file_format: str = FORMAT, version: int = VERSION
                     ) -> Path:
    """Write `payload` atomically as a container holding its serialised bytes and their sha256.

    torch's zip archives carry no checksum that torch.load verifies: flipped bytes inside a weight tensor load
    silently. The container lets `read_checkpoint` refuse any change to the payload.
    """
    return write_checkpoints([(path, payload)], file_format, version)[0]


def write_checkpoints(checkpoints: list[tuple[Path, dict[str, Any]]], file_format: str = FORMAT,
                      version: int = VERSION) -> list[Path]:
    """`write_checkpoint` for several files that change together (see `atomic_write_all`)."""
    return atomic_write_all([(path, functools.partial(_save_container, payload, file_format, version))
                             for path, payload in checkpoints])


def _save_container(payload: dict[str, Any], file_format: str, version: int, f) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    blob = buffer.getvalue()
    container = {"format": file_format, "version": version, "sha256": hashlib.sha256(blob).hexdigest(),
                 "payload": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}
    torch.save(container, f)


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu", *, file_format: str = FORMAT,
                    version: int = VERSION, required: tuple[str, ...] = (), what: str = "checkpoint",
                    remedy: str = "delete it to start over or restore a copy") -> dict[str, Any]:
    """Load, verify and sanity-check a file written by `write_checkpoint` (a run checkpoint, or another vaegan
    file of `file_format`, e.g. a classifier); every failure becomes one VaeganError naming the file. A damaged
    file's error ends with `remedy`, what to do about it: a run starts over, a classifier is trained again."""
    path = Path(path)
    if path.is_dir():
        raise VaeganError(f"{path} is a folder, not a {what} file")
    if not path.is_file():
        raise VaeganError(f"no {what} file at {path}")
    corrupt = f"{what} {path} is corrupt or truncated; {remedy}"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one loses its index
        raise VaeganError(corrupt)
    container = _load_weights_only(path, path, map_location, corrupt)
    if not isinstance(container, dict) or container.get("format") != file_format:
        raise VaeganError(f"{path} is not a {file_format.replace('-', ' ')} file")
    found = container.get("version")
    if found != version:
        raise VaeganError(f"{path} has file version {found}; this vaegan reads version {version} of "
                          f"{file_format.replace('-', ' ')} files")
    blob = container.get("payload")
    if not (torch.is_tensor(blob) and blob.dtype == torch.uint8 and isinstance(container.get("sha256"), str)):
        raise VaeganError(corrupt)
    data = blob.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != container["sha256"]:
        raise VaeganError(f"{what} {path} fails its checksum: its content changed after it was written "
                          f"(disk or copy error); {remedy}")
    payload = _load_weights_only(io.BytesIO(data), path, map_location, corrupt)
    if not isinstance(payload, dict):
        raise VaeganError(corrupt)
    missing = [key for key in required if key not in payload]
    if missing:
        raise VaeganError(f"{path} is not a complete {file_format.replace('-', ' ')} file: it has no "
                          f"{', '.join(missing)}")
    return payload


def is_count(value: Any, low: int = 0, high: int = 2**62) -> bool:
    """Whether a record read from a file holds a whole number in low..high (True and 2.0 are not counts): checked
    before anything is built from it, since a checksum proves a file intact, not sensibly filled."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@contextmanager
def state_must_fit(run_dir: Path) -> Iterator[None]:
    """Turn a state_dict that does not fit its module (missing keys, other shapes) into one VaeganError."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VaeganError(f"the checkpoint of {run_dir} does not fit the model its config describes "
                          f"({first_line})") from None
