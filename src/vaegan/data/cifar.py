"""Readers for the standard python-format CIFAR folders (`cifar-10-batches-py/`, `cifar-100-python/`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaegan.data.dataset import ImageDataset
from vaegan.data.safe_pickle import load_untrusted_pickle
from vaegan.errors import VaeganError

log = logging.getLogger(__name__)

OFFICIAL_COUNTS = {"train": 50_000, "test": 10_000}
_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class _LabelField:
    labels_key: str  # in each batch file
    names_key: str  # in the meta file
    num_classes: int


@dataclass(frozen=True)
class _Format:
    batch_files: dict[str, tuple[str, ...]]  # split -> files, concatenated in order
    meta_file: str
    fine: _LabelField
    coarse: _LabelField | None = None


_FORMATS = {
    "cifar10": _Format(
        batch_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta_file="batches.meta",
        fine=_LabelField("labels", "label_names", 10),
    ),
    "cifar100": _Format(
        batch_files={"train": ("train",), "test": ("test",)},
        meta_file="meta",
        fine=_LabelField("fine_labels", "fine_label_names", 100),
        coarse=_LabelField("coarse_labels", "coarse_label_names", 20),
    ),
}


def read_cifar(name: str, folder: Path, split: str) -> ImageDataset:
    """Load one split of `name` ("cifar10" or "cifar100") from its extracted folder into uint8/int64 tensors."""
    fmt = _FORMATS[name]
    meta_path = folder / fmt.meta_file
    meta = _load_dict(meta_path)
    fields = [fmt.fine] if fmt.coarse is None else [fmt.fine, fmt.coarse]
    names = {field: _class_names(meta, field, meta_path) for field in fields}

    pixels, labels = [], {field: [] for field in fields}
    for file in fmt.batch_files[split]:
        path = folder / file
        batch = _load_dict(path)
        data = _pixel_rows(batch, path)
        pixels.append(data)
        for field in fields:
            labels[field].append(_label_column(batch, field, len(data), path))

    # One concatenation: a single contiguous, writable copy that torch can share without copying again.
    images = torch.from_numpy(np.concatenate(pixels).reshape(-1, 3, 32, 32))
    tensors = {field: torch.from_numpy(np.concatenate(columns)) for field, columns in labels.items()}
    if len(images) != OFFICIAL_COUNTS[split]:
        log.warning("%s %s split in %s has %d images; the official split has %d",
                    name, split, folder, len(images), OFFICIAL_COUNTS[split])
    coarse = fmt.coarse
    return ImageDataset(
        name=name, split=split, images=images, labels=tensors[fmt.fine], class_names=names[fmt.fine],
        coarse_labels=tensors[coarse] if coarse else None, coarse_class_names=names[coarse] if coarse else None,
    )


def _load_dict(path: Path) -> dict[str, object]:
    """Unpickle a CIFAR file; Python 2 files may carry bytes keys, so keys come back as text."""
    content = load_untrusted_pickle(path)
    if not isinstance(content, dict):
        raise VaeganError(f"{path} is not a CIFAR file: it holds a {type(content).__name__}, not a dict")
    return {_text(key): value for key, value in content.items()}


def _field(content: dict[str, object], key: str, path: Path) -> object:
    if key not in content:
        raise VaeganError(f"{path} is not a CIFAR file of the expected kind: it has no '{key}' entry")
    return content[key]


def _text(value: object) -> object:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _class_names(meta: dict[str, object], field: _LabelField, path: Path) -> list[str]:
    names = [_text(name) for name in _field(meta, field.names_key, path)]
    if len(names) != field.num_classes or not all(isinstance(name, str) for name in names):
        raise VaeganError(f"{path}: '{field.names_key}' should list {field.num_classes} class names, "
                          f"found {len(names)}")
    return names


def _pixel_rows(batch: dict[str, object], path: Path) -> np.ndarray:
    data = _field(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        found = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise VaeganError(f"{path}: 'data' should be a uint8 array of shape [N, {_PIXELS}], found {found}")
    return data


def _label_column(batch: dict[str, object], field: _LabelField, rows: int, path: Path) -> np.ndarray:
    try:
        labels = np.asarray(_field(batch, field.labels_key, path), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise VaeganError(f"{path}: '{field.labels_key}' is not a list of integers ({exc})") from exc
    if labels.shape != (rows,):
        raise VaeganError(f"{path}: '{field.labels_key}' has shape {list(labels.shape)}, expected [{rows}] "
                          "(one label per image)")
    if rows and (labels.min() < 0 or labels.max() >= field.num_classes):
        raise VaeganError(f"{path}: '{field.labels_key}' has values in [{labels.min()}, {labels.max()}], "
                          f"expected [0, {field.num_classes - 1}]")
    return labels
