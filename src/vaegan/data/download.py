"""Fetching the official CIFAR archives so that a failed or interrupted download never leaves a half folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vaegan.runs.download import stream_url
from vaegan.runs.files import download_temp_pattern, remove_stale_temp_files, temp_prefix
from vaegan.errors import VaeganError


@dataclass(frozen=True)
class Archive:
    """Where an official tarball lives, its checksum, and the folder it unpacks to."""

    url: str
    md5: str
    folder: str


CIFAR_ARCHIVES = {
    "cifar10": Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    "cifar100": Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
}
_PART, _STAGING = ".tar.gz.part", ".extracting"  # suffixes of the temp file and folder


def cifar_folder(name: str, data_dir: Path, download: bool = True, *,
                 url: str | None = None, md5: str | None = None) -> Path:
    """The extracted folder of `name` under `data_dir`, downloaded first when missing.

    `url` and `md5` replace the official ones (tests feed a local file:// archive).
    """
    official = CIFAR_ARCHIVES[name]
    archive = Archive(url or official.url, md5 or official.md5, official.folder)
    target = data_dir / archive.folder
    if target.is_dir():
        return target
    if not download:
        raise VaeganError(_absent_message(name, data_dir, archive, "downloading is switched off"))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _download_and_extract(name, archive, data_dir)
    except OSError as exc:  # the data folder cannot be created or written
        reason = f"cannot be written there ({exc.strerror or exc})"
        raise VaeganError(_absent_message(name, data_dir, archive, reason)) from exc
    return target


def _download_and_extract(name: str, archive: Archive, data_dir: Path) -> None:
    """Download to a temp file, check md5, extract into a temp folder, then move the folder into place atomically.

    Both temp names carry the process id, so that those of killed downloads are removed first."""
    temp_name = f".{archive.folder}"
    remove_stale_temp_files(data_dir, download_temp_pattern(temp_name, _PART, _STAGING))
    handle, part_name = tempfile.mkstemp(dir=data_dir, prefix=temp_prefix(temp_name), suffix=_PART)
    part = Path(part_name)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=temp_prefix(temp_name), suffix=_STAGING))
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _copy_url(name, archive, data_dir, out)
        if digest != archive.md5:
            raise VaeganError(f"download of {name} from {archive.url} is corrupt (md5 {digest}, expected "
                              f"{archive.md5}); the file was removed, try again")
        _extract(part, staging, archive.url)
        extracted = staging / archive.folder
        if not extracted.is_dir():
            raise VaeganError(f"archive {archive.url} does not contain the folder {archive.folder}/")
        try:
            os.replace(extracted, data_dir / archive.folder)
        except OSError as exc:
            # Another process (say a second training rank) may have put the folder in place first.
            if not (data_dir / archive.folder).is_dir():
                raise VaeganError(f"cannot move {archive.folder} into {data_dir}: {exc.strerror}") from exc
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)


def _copy_url(name: str, archive: Archive, data_dir: Path, out: BinaryIO) -> str:
    """Stream `archive.url` into `out`; returns the md5 of what was written."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        stream_url(archive.url, out, digest, f"downloading {name}")
    except OSError as exc:
        raise VaeganError(_absent_message(name, data_dir, archive, f"download is impossible ({exc})")) from exc
    return digest.hexdigest()


def _extract(tar_path: Path, destination: Path, url: str) -> None:
    """Unpack with tarfile's 'data' filter, which refuses members that would land outside `destination`."""
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except tarfile.FilterError as exc:
        raise VaeganError(f"refusing archive {url}: unsafe member ({exc})") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VaeganError(f"cannot extract archive {url}: {exc}") from exc


def _absent_message(name: str, data_dir: Path, archive: Archive, reason: str) -> str:
    return (f"{name} is absent at {data_dir} and {reason}; put the extracted folder at "
            f"{data_dir / archive.folder} (from {archive.url}), or set VAEGAN_DATA=/path to a folder that "
            f"holds it, or run offline with data.name=shapes10")
