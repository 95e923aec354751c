"""Writing files so that a crash, a full disk or a kill never leaves a half-written one in place.

Every file vaegan writes whole (checkpoints, summaries, eval.json, cached features, PNGs, downloads) goes
through `atomic_write`: the bytes land in a temporary file beside the target, named with the writer's process
id, are flushed to disk, and only then renamed over the target (a rename is atomic within a filesystem). A
killed writer leaves its temporary file behind; `remove_stale_temp_files` clears those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from vaegan.errors import VaeganError

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.(\d+)\.tmp")  # what atomic_write leaves when killed: .NAME.PID.tmp


def temp_path(path: Path) -> Path:
    """The temporary name a write of `path` uses in this process: `.NAME.PID.tmp` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_error(path: Path, err: BaseException) -> VaeganError:
    """One line for a failed write: the file, and the cause in words (full disk, read-only, ...)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason = "no space left on the device"
    elif isinstance(err, OSError):
        reason = err.strerror or type(err).__name__
    else:  # torch.save reports a failed write as RuntimeError (inline_container.cc)
        reason = "the write failed (is the disk full?)"
    return VaeganError(f"cannot write {path}: {reason}; earlier files there are unchanged")


def atomic_write(path: Path, content: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write `content` (bytes, text, or a function that writes into a binary file) to `path` atomically.

    Any failure (disk full, read-only folder, a serialiser error) removes the temporary file, leaves the old
    `path` as it was, and is raised as one VaeganError naming the file.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        raise write_error(path, err) from None
    finally:
        with contextlib.suppress(OSError):  # e.g. no folder to hold it: then there is nothing to remove
            tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, record: Any) -> Path:
    return atomic_write(path, json.dumps(record, indent=2) + "\n")


def process_alive(pid: int) -> bool:
    """Whether process `pid` may still run (then its temporary files are kept)."""
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: never probe, keep everything
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # alive under another user; not a process id at all
        return True
    return True


def temp_prefix(name: str) -> str:
    """The mkstemp/mkdtemp prefix of this process's temporary `name` entries (downloads): `NAME.<pid>.`."""
    return f"{name}.{os.getpid()}."


def download_temp_pattern(name: str, *suffixes: str) -> re.Pattern:
    """The names `tempfile` gives with `temp_prefix(name)` and one of `suffixes`: `NAME.<pid>.<random>SUFFIX`."""
    ending = "|".join(re.escape(suffix) for suffix in suffixes)
    return re.compile(rf"{re.escape(name)}\.(\d+)\.\w+(?:{ending})")


def remove_stale_temp_files(folder: Path, pattern: re.Pattern = _TEMP_NAME) -> list[Path]:
    """Delete the entries of `folder` named by `pattern` (its first group: the writer's pid) whose writer no
    longer runs. A write that ends, even by an error, removes its own temporary file; a killed one cannot."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and not process_alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
