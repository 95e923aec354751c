"""Tiny CIFAR-format folders and archives written per test, in the layouts real users hold."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes, as the official (Python 2) CIFAR pickles do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_python2_str


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [_as_bytes(item) for item in value]
    return value


def dump(path: Path, content: dict, style: str) -> None:
    """Write `content` as Python 3 ("py3"), Python 3 protocol 2 with bytes ("bytes"), or genuine Python 2 ("py2")."""
    if style == "py3":
        path.write_bytes(pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))
        return
    content = {key.encode(): _as_bytes(value) for key, value in content.items()}
    if style == "bytes":
        path.write_bytes(pickle.dumps(content, protocol=2))
        return
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(content)
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.", b"numpy.core."))  # numpy 1 names, as in the files


def _batch(rng: np.random.Generator, rows: int, **label_counts: int) -> dict:
    batch = {"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8), "batch_label": "tiny"}
    for key, classes in label_counts.items():
        batch[key] = rng.integers(0, classes, rows).tolist()
    return batch


def write_cifar_folder(root: Path, name: str, style: str = "py3", rows: int = 6) -> Path:
    """A CIFAR-format folder under `root` with `rows` images per batch file, random pixels and labels."""
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        dump(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, style)
        for file in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            dump(folder / file, _batch(rng, rows, labels=10), style)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        meta = {"fine_label_names": [f"fine{i}" for i in range(100)],
                "coarse_label_names": [f"coarse{i}" for i in range(20)]}
        dump(folder / "meta", meta, style)
        for file in ("train", "test"):
            dump(folder / file, _batch(rng, rows, fine_labels=100, coarse_labels=20), style)
    return folder


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz at `path` holding the given member names and contents verbatim (unsafe names included)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def cifar_files():
    """The helpers above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(dump=dump, folder=write_cifar_folder, tar_gz=write_tar_gz)
