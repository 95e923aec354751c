"""Writing files so that a crash, a full disk or a kill never leaves a half-written one in place.

Every file vaegan writes whole (checkpoints, summaries, eval.json, cached features, PNGs, downloads) goes
through `atomic_write`: the bytes land in a temporary file beside the target, named with the writer's process
id, are flushed to disk, and only then renamed over the target (a rename is atomic within a filesystem). A
killed writer leaves its temporary file behind; `remove_stale_temp_files` clears those whose process is gone.

In a folder the user names (`--out` of reproduce and ablate), which may hold the user's own files, whole files go
through `OutputFolder.write`: vaegan never overwrites what it did not write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from vaegan.errors import VaeganError

TEMP_SUFFIX = ".tmp"
OUTPUTS_MANIFEST = ".vaegan-outputs"  # in a user-named folder: the files vaegan wrote there, with their sha256
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
    return atomic_write_all([(Path(path), content)])[0]


def atomic_write_all(files: list[tuple[Path, bytes | str | Callable[[IO[bytes]], None]]]) -> list[Path]:
    """Write several files as `atomic_write` does, renaming none before all are written and flushed: files
    that belong together (the checkpoints of fused runs) change together, unless a kill lands between two
    renames, microseconds apart. A failure leaves every one of them as it was."""
    temps = []
    try:
        for path, content in files:
            path = Path(path)
            temps.append((temp_path(path), path))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(temps[-1][0], "wb") as f:
                    if callable(content):
                        content(f)
                    else:
                        f.write(content.encode() if isinstance(content, str) else content)
                    f.flush()
                    os.fsync(f.fileno())
            except (OSError, RuntimeError) as err:
                raise write_error(path, err) from None
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise write_error(path, err) from None
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):  # e.g. no folder to hold it: then there is nothing to remove
                tmp.unlink(missing_ok=True)
    for folder in {path.parent for _, path in temps}:
        _sync_folder(folder)
    return [path for _, path in temps]


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OutputFolder:
    """A folder the user named, where vaegan's files may lie beside the user's own.

    FOLDER/.vaegan-outputs lists every file vaegan wrote there with its sha256. A file that exists is replaced
    only when it is listed and unchanged since vaegan wrote it, so neither the user's own report.md nor one of
    vaegan's files that the user has since edited is ever overwritten; a rerun still updates vaegan's own files.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.manifest = self.path / OUTPUTS_MANIFEST

    def _written(self) -> dict[str, str]:
        """name (relative to the folder) -> sha256 of the files vaegan wrote here."""
        if not self.manifest.is_file():
            return {}
        try:
            files = json.loads(self.manifest.read_bytes().decode("utf-8"))["files"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise VaeganError(f"{self.manifest} (the files vaegan wrote in {self.path}) is corrupt or unreadable "
                              f"({type(err).__name__}); choose another --out") from None
        if not isinstance(files, dict):
            raise VaeganError(f"{self.manifest} (the files vaegan wrote in {self.path}) is corrupt; choose "
                              "another --out")
        return files

    def _name(self, path: Path) -> str:
        return Path(path).relative_to(self.path).as_posix()

    def check(self, *paths: Path) -> None:
        """Refuse, in one line, a folder that is a file, and the first of `paths` that exists and is not
        vaegan's unchanged file."""
        if os.path.lexists(self.path) and not self.path.is_dir():
            raise VaeganError(f"{self.path} is a file, not a folder: choose another --out")
        written = self._written()
        for path in map(Path, paths):
            if not os.path.lexists(path):
                continue
            if path.is_symlink() or not path.is_file() or written.get(self._name(path)) != sha256_of(path):
                raise VaeganError(f"{path} was not written by vaegan, or was changed since; vaegan never "
                                  "overwrites such a file: move it away or choose another --out")

    def write(self, path: Path, content: bytes | str | Callable[[IO[bytes]], None]) -> Path:
        """`atomic_write` of a file of this folder that is new or vaegan's own (see `check`), then recorded."""
        self.check(path)
        atomic_write(path, content)
        self.record(path)
        return Path(path)

    def record(self, *paths: Path) -> None:
        """List `paths` (just written by vaegan, by whichever writer) as vaegan's, with their current sha256."""
        written = self._written()
        try:
            written.update({self._name(path): sha256_of(path) for path in map(Path, paths)})
        except OSError as err:
            raise write_error(self.manifest, err) from None
        write_json(self.manifest, {"files": dict(sorted(written.items()))})


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
