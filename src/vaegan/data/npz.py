"""Arrays of the user's own images as a dataset (`data.name=npz`, `data.dir=FILE.npz`).

The file holds `x` (uint8 RGB, [N, H, W, 3] or [N, 3, H, W]; [N, 3, H, 3] is read as channels last; greyscale
[N, H, W], [N, H, W, 1] or [N, 1, H, W] becomes three equal channels, as a folder's grey files do) and optionally
`y` (integer labels), `class_names` (strings) and a test split `x_test` / `y_test`; without `y` the dataset is
unconditional (one class). Images of another size than 32x32 are resized as data.name=folder resizes its files
(resize.py: shorter side to 32, bicubic, centre crop) and a warning says so; 32x32 images are used as they are,
bit for bit. Each member is read by `_member`, with allow_pickle=False (an object array is refused rather than unpickled) and its declared
size checked against the bytes it holds before anything is allocated, so any member that cannot be read ends in
one error naming the file and the member.
"""

from __future__ import annotations

import hashlib
import logging
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaegan.data.dataset import ImageDataset
from vaegan.data.resize import SIDE, resize_and_crop
from vaegan.errors import VaeganError

log = logging.getLogger(__name__)

KNOWN_ARRAYS = ("x", "y", "class_names", "x_test", "y_test")
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(path: Path) -> tuple[ImageDataset, ImageDataset | None]:
    """The train split of the file and its test split (None when it has no `x_test`)."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise VaeganError(f"data.dir={path} is not a file (data.name=npz reads a .npz file with arrays x and "
                          f"optionally y, class_names, x_test, y_test)")
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name in KNOWN_ARRAYS:
                    arrays[name] = _member(archive, info, path)
    except (OSError, EOFError, zipfile.BadZipFile):
        raise VaeganError(f"{path} is not a readable .npz file (damaged, truncated or another format)") from None
    if "x" not in arrays:
        raise VaeganError(f"{path} has no array named x (found: {', '.join(sorted(arrays)) or 'none we read'}); "
                          f"vaegan reads {', '.join(KNOWN_ARRAYS)}")
    labelled = "y" in arrays
    if "y_test" in arrays and not ("x_test" in arrays and labelled):
        raise VaeganError(f"{path} has y_test without {'x_test' if labelled else 'y'}: y_test labels x_test, and "
                          f"only when y labels x")
    if labelled and "x_test" in arrays and "y_test" not in arrays:
        raise VaeganError(f"{path} has x_test but no y_test: the test split needs labels, as x has them (y)")
    images = _images(arrays["x"], path, "x")
    labels = _labels(arrays.get("y"), len(images), path, "y")
    names = _class_names(arrays.get("class_names"), labels, path)
    _check_range(labels, len(names), path, "y")
    stat = path.stat()  # named by the file's identity, so cached features never outlive a change to it
    name = f"{path.stem}-{hashlib.sha256(f'{path} {stat.st_size} {stat.st_mtime_ns}'.encode()).hexdigest()[:8]}"
    train = ImageDataset(name, "train", images, labels, names)
    if "x_test" not in arrays:
        return train, None
    test_images = _images(arrays["x_test"], path, "x_test")
    test_labels = _labels(arrays.get("y_test") if labelled else None, len(test_images), path, "y_test")
    _check_range(test_labels, len(names), path, "y_test")
    return train, ImageDataset(name, "test", test_images, test_labels, names)


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One member as an array; whatever it is (not .npy, encrypted, compressed by a method zipfile lacks, damaged,
    an object array, a header declaring more data than the member holds) ends in one error naming it."""
    where = f"{path}: member {info.filename}"
    try:
        with archive.open(info.filename) as member:
            version = np.lib.format.read_magic(member)
            if version not in _HEADER_READERS:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
            shape, _, dtype = _HEADER_READERS[version](member)
            if dtype.hasobject:
                raise VaeganError(f"{where} is an object array (object arrays are refused: store class_names as "
                                  f"strings)")
            declared, held = math.prod(shape) * dtype.itemsize, info.file_size - member.tell()
            if declared != held:
                raise VaeganError(f"{where} declares shape {list(shape)} of {dtype} ({declared:,} bytes) but holds "
                                  f"{held:,} bytes")
            member.seek(0)
            return np.lib.format.read_array(member, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as err:  # zipfile: NotImplementedError for a compression method, RuntimeError encrypted
        raise VaeganError(f"{where} cannot be read ({err})") from None


def _images(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise VaeganError(f"{path}: {key} has dtype {x.dtype}; it must be uint8 pixels 0-255")
    if x.ndim == 3 and x.shape[2] in (3, 4):
        raise VaeganError(f"{path}: {key} has shape {list(x.shape)}, one colour image rather than a batch; it must be "
                          f"[N, H, W, 3] (x[None] for a single image)")
    if x.ndim == 3 or (x.ndim == 4 and x.shape[3] == 1):  # greyscale, channels last
        x = np.repeat(x.reshape(*x.shape[:3], 1), 3, axis=3)
    elif x.ndim == 4 and x.shape[1] == 1:  # greyscale, channels first
        x = np.repeat(x, 3, axis=1)
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[3]) or 0 in x.shape:
        raise VaeganError(f"{path}: {key} has shape {list(x.shape)}; it must be RGB images [N, H, W, 3] or "
                          f"[N, 3, H, W], or greyscale [N, H, W], with N, H, W >= 1")
    hwc = x if x.shape[3] == 3 else x.transpose(0, 2, 3, 1)
    if hwc.shape[1:3] != (SIDE, SIDE):
        log.warning("resized %d images of %s in %s from %dx%d to %dx%d (shorter side to %d, centre crop, as "
                    "data.name=folder does)", len(hwc), key, path, *hwc.shape[1:3], SIDE, SIDE, SIDE)
        hwc = np.stack([resize_and_crop(Image.fromarray(image)) for image in hwc])
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))


def _labels(y: np.ndarray | None, count: int, path: Path, key: str) -> torch.Tensor:
    if y is None:
        return torch.zeros(count, dtype=torch.int64)
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or len(y) != count:
        raise VaeganError(f"{path}: {key} must be integer labels of shape [{count}] (one per image), got "
                          f"{y.dtype} of shape {list(y.shape)}")
    return torch.from_numpy(y.astype(np.int64))


def _class_names(names: np.ndarray | None, labels: torch.Tensor, path: Path) -> list[str]:
    if names is None:  # unlabelled: one class, named as a flat image folder's
        return [str(i) for i in range(int(labels.max()) + 1)] if labels.any() else ["image"]
    if names.dtype.kind not in "US" or names.ndim != 1 or len(names) == 0:
        raise VaeganError(f"{path}: class_names must be a 1-D array of strings, got {names.dtype} of shape "
                          f"{list(names.shape)}")
    try:
        return [name.decode() if isinstance(name, bytes) else name for name in names.tolist()]
    except UnicodeDecodeError:
        raise VaeganError(f"{path}: member class_names holds bytes that are not UTF-8 text; store the names as "
                          f"str") from None


def _check_range(labels: torch.Tensor, classes: int, path: Path, key: str) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise VaeganError(f"{path}: {key} holds labels {int(labels.min())}..{int(labels.max())}, outside 0.."
                          f"{classes - 1} ({classes} classes)")
