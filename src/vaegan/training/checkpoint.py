"""Crash-safe checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint holds everything needed to continue a run bit-exactly on CPU: model and optimiser state, every
RNG state, the data-order position (epoch, batch within it), the step, the resolved config, and how far
`metrics.jsonl` had been written (so a resumed run drops the lines logged after the checkpoint).
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaegan.errors import VaeganError

FORMAT = "vaegan-checkpoint"
VERSION = 1


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


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over `path`.

    A crash at any moment leaves either the previous complete file or the new complete file, never a
    partial one: os.replace is atomic within a filesystem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", expected_format: str = FORMAT
                    ) -> dict[str, Any]:
    """Load and sanity-check a checkpoint (or another vaegan file of `expected_format`, e.g. a classifier);
    every failure becomes one VaeganError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise VaeganError(f"no checkpoint at {path}: the run has not saved one yet (or the path is wrong)")
    corrupt = f"checkpoint {path} is corrupt or truncated; delete it to start over or restore a copy"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one loses its index
        raise VaeganError(corrupt)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported content"
        raise VaeganError(f"refusing to load {path}: it holds more than plain weights ({first_line})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError):
        raise VaeganError(corrupt) from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise VaeganError(f"{path} is not a {expected_format.replace('-', ' ')} file")
    if payload.get("version") != VERSION:
        raise VaeganError(f"{path} has checkpoint version {payload.get('version')}; this vaegan reads version "
                          f"{VERSION}")
    return payload


def make_payload(**fields: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, **fields}


@contextmanager
def state_must_fit(run_dir: Path) -> Iterator[None]:
    """Turn a state_dict that does not fit its module (missing keys, other shapes) into one VaeganError."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VaeganError(f"the checkpoint of {run_dir} does not fit the model its config describes "
                          f"({first_line})") from None
