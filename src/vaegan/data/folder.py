"""A folder of the user's own images as a dataset (`data.name=folder`, `data.dir=PATH`).

Layout: one subfolder per class (labels in sorted folder order), or images directly in PATH for an
unconditional dataset (one class). A `test/` subfolder holding the same classes is the test split; without one,
the test split is held out of the rest (`data.test_fraction`, see ImageDataset.hold_out). PNG, JPEG, WebP and
BMP files are read, converted to 8-bit RGB (16-bit pixels by their high byte, float pixels from 0..1,
transparent pixels over white), resized so the shorter side is 32 pixels (bicubic) and centre-cropped to 32x32
(resize.py, shared with npz.py). Other files are ignored; a symlink leading outside PATH is not followed; a
symlink leading nowhere and a special file (a named pipe would block the read) are skipped and named; an image
that cannot be read is skipped and named, and more than MAX_BAD_SHARE of them refuses the folder. Pillow's
decompression-bomb guard stays on. The decoded pixels are cached in the cache folder, keyed by every file's
name and content, so a changed folder is read again.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaegan.data.dataset import ImageDataset
from vaegan.data.resize import SIDE, resize_and_crop
from vaegan.errors import VaeganError
from vaegan.runs.cache import write_to_cache

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_BAD_SHARE = 0.05  # more unreadable images than this share of a split refuses the folder
TEST_FOLDER = "test"
_CACHE_VERSION = 2  # 2: 16-bit, float and transparent pixels converted by _to_rgb


@dataclass
class _Listing:
    """The image files of one split, by class, and what was left out."""

    classes: dict[str, list[Path]]
    ignored: list[Path] = field(default_factory=list)  # not images (by suffix)
    outside: list[Path] = field(default_factory=list)  # symlinks leading outside the folder
    broken: list[Path] = field(default_factory=list)  # symlinks leading nowhere: dangling or in a loop
    special: list[Path] = field(default_factory=list)  # named pipes, sockets, devices: opening one can block


def read_folder(root: Path, cache: Path | None) -> tuple[ImageDataset, ImageDataset | None]:
    """The train split of the folder and its `test/` split (None when it has none)."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise VaeganError(f"data.dir={root} is not a folder (data.name=folder reads a folder of images, one "
                          f"subfolder per class)")
    resolved = root.resolve()
    train = _list_split(root, resolved, exclude=TEST_FOLDER)
    test_root = root / TEST_FOLDER
    test = _list_split(test_root, resolved) if test_root.is_dir() and not test_root.is_symlink() else None
    if test is not None and sorted(test.classes) != sorted(train.classes):
        raise VaeganError(f"the classes of {test_root} ({_names(test.classes)}) differ from those of {root} "
                          f"({_names(train.classes)}); the test split must hold the same class folders")
    # Named by the training files, so features cached under a dataset's name never outlive a change to it.
    train_key = _cache_key(root, train)  # reads every file: computed once, for the name and the cache
    name = f"{root.name}-{train_key[:8]}"
    return (_decoded(root, train_key, name, "train", train, cache),
            _decoded(test_root, _cache_key(test_root, test), name, "test", test, cache) if test else None)


def _names(classes: dict[str, list[Path]]) -> str:
    shown = sorted(classes)
    return ", ".join(shown[:6]) + (f" and {len(shown) - 6} more" if len(shown) > 6 else "")


def _entries(folder: Path, resolved_root: Path, listing: _Listing) -> tuple[list[Path], list[Path]]:
    """The subfolders and image files directly in `folder`, sorted; what is left out goes to `listing`."""
    folders, images = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):  # dangling, or a loop (RuntimeError before Python 3.13)
                listing.broken.append(path)
                continue
            if not target.is_relative_to(resolved_root):
                listing.outside.append(path)
                continue
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            folders.append(path)
        elif not stat.S_ISREG(mode):
            listing.special.append(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            listing.ignored.append(path)
    return folders, images


def _list_split(folder: Path, resolved_root: Path, exclude: str | None = None) -> _Listing:
    listing = _Listing({})
    subfolders, loose = _entries(folder, resolved_root, listing)
    subfolders = [path for path in subfolders if path.name != exclude]
    if subfolders and loose:
        raise VaeganError(f"{folder} holds both images ({loose[0].name}, ...) and class folders ({subfolders[0].name}, "
                          f"...): put every image in a class folder, or all of them directly in {folder} for an "
                          f"unconditional dataset")
    if not subfolders:
        if not loose:
            raise VaeganError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no class folders")
        listing.classes["image"] = loose
        return listing
    if len(subfolders) == 1:
        raise VaeganError(f"{folder} has one class folder only ({subfolders[0].name}): a conditional dataset needs "
                          f"two or more; for an unconditional one put the images directly in {folder}")
    for sub in subfolders:
        _, images = _entries(sub, resolved_root, listing)  # folders inside a class folder are not read
        if not images:
            raise VaeganError(f"class folder {sub} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        listing.classes[sub.name] = images
    return listing


def _cache_key(folder: Path, listing: _Listing) -> str:
    """A hash of every file's name and bytes: a file rewritten with its old size and time (cp -p, rsync -t)
    still changes the key. Reading the bytes costs far less than decoding them again."""
    digest = hashlib.sha256(f"{_CACHE_VERSION} {SIDE} {folder}".encode())
    for name in sorted(listing.classes):
        for path in listing.classes[name]:
            try:
                with open(path, "rb") as f:
                    content = hashlib.file_digest(f, "sha256").hexdigest()
            except OSError as err:  # decoding will skip and name it; the key only has to be stable
                content = f"unreadable {err.errno}"
            digest.update(f"\0{name}/{path.name}\0{content}".encode())
    return digest.hexdigest()[:32]


def _decoded(folder: Path, key: str, name: str, split: str, listing: _Listing, cache: Path | None
             ) -> ImageDataset:
    """The listing's images as an ImageDataset, from the cache file of `key` when the files have not changed."""
    classes = sorted(listing.classes)
    path = cache / "folders" / f"{key}.npz" if cache else None
    arrays = _read_cache(path) if path else None
    if arrays is None:
        arrays = _decode_all(folder, listing, classes)
        if path:
            write_to_cache(path, lambda f: np.savez(f, **arrays), f"the decoded images of {folder}")
    return ImageDataset(name, split, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), classes)


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in ("images", "labels")}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None  # missing or damaged: decode again


def _decode_all(folder: Path, listing: _Listing, names: list[str]) -> dict[str, np.ndarray]:
    images, labels, bad = [], [], []
    for label, name in enumerate(names):
        for path in listing.classes[name]:
            try:
                images.append(_decode(path))
                labels.append(label)
            except _Unreadable as err:
                bad.append(f"{path.relative_to(folder)} ({err})")
    total = len(images) + len(bad)
    kinds = "/".join(suffix[1:].upper() for suffix in IMAGE_SUFFIXES)
    left_out = ((listing.outside, "not followed: {} symlink(s) leading outside"),
                (listing.broken, "skipped {} broken symlink(s) (dangling or in a loop) in"),
                (listing.special, "skipped {} special file(s) (named pipes, sockets, devices) in"),
                (listing.ignored, f"ignored {{}} file(s) that are not {kinds} images in"))
    for paths, what in left_out:
        if paths:
            log.warning("%s %s: %s", what.format(len(paths)), folder,
                        _some([str(path.relative_to(folder)) for path in paths]))
    if bad:
        shown = _some(bad)
        if len(bad) > MAX_BAD_SHARE * total:
            raise VaeganError(f"{len(bad)} of {total} images in {folder} cannot be read (more than "
                              f"{MAX_BAD_SHARE:.0%}), e.g. {shown}")
        log.warning("skipped %d of %d images in %s that cannot be read: %s", len(bad), total, folder, shown)
    return {"images": np.stack(images), "labels": np.asarray(labels, dtype=np.int64)}


def _some(names: list[str]) -> str:
    return "; ".join(names[:3]) + ("; ..." if len(names) > 3 else "")


class _Unreadable(Exception):
    pass


def _decode(path: Path) -> np.ndarray:
    """One file as uint8 [3, 32, 32]: RGB, shorter side resized to 32, centre crop."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", (SIDE, SIDE))  # JPEG: decode at a reduced scale when the file allows it
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _Unreadable("larger than Pillow's decompression-bomb limit") from None
    except UnidentifiedImageError:
        raise _Unreadable("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise _Unreadable(f"damaged or truncated: {err}") from None
    return resize_and_crop(_to_rgb(image)).transpose(2, 0, 1).copy()


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits a pixel, one channel


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode as 8-bit RGB with the values it means: wide pixels scaled (see _to_8bit), transparent pixels laid
    over white (their hidden colour is arbitrary); a mode Pillow cannot convert is refused by name."""
    if image.mode in _WIDE_MODES:
        return Image.fromarray(_to_8bit(np.asarray(image), image.mode)).convert("RGB")
    try:
        if not image.has_transparency_data:
            return image.convert("RGB")
        rgba = image.convert("RGBA")
    except ValueError:
        raise _Unreadable(f"image mode {image.mode} cannot be converted to RGB") from None
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _to_8bit(pixels: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (and 32-bit integer) pixels are 0..65535, kept by their high byte as Pillow does for 16-bit RGB;
    float pixels are 0..1. Values outside that range have no one meaning, so the file is refused."""
    if mode == "F":
        if not (np.isfinite(pixels).all() and 0 <= pixels.min() and pixels.max() <= 1):
            raise _Unreadable(f"image mode F (float) with values {pixels.min()}..{pixels.max()}, outside 0..1")
        return np.rint(pixels * 255).astype(np.uint8)
    if pixels.min() < 0 or pixels.max() > 65535:
        raise _Unreadable(f"image mode {mode} (32-bit integer) with values {pixels.min()}..{pixels.max()}, "
                          f"outside the 16-bit range 0..65535")
    return (pixels >> 8).astype(np.uint8)
