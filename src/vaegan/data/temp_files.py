"""Temporary download files and folders named after their process, so that what a killed download left behind can
be told from what a running one is writing, and removed."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def temp_prefix(name: str) -> str:
    """The mkstemp/mkdtemp prefix of this process's temporary `name` entries: `NAME.<pid>.`."""
    return f"{name}.{os.getpid()}."


def remove_stale_temp(folder: Path, name: str, *suffixes: str) -> None:
    """Remove the `NAME.<pid>.<random>SUFFIX` files and folders in `folder` whose process is gone. A download that
    ends, even by an error, removes its own; a killed one cannot. Other names are never touched."""
    ending = "|".join(re.escape(suffix) for suffix in suffixes)
    pattern = re.compile(rf"{re.escape(name)}\.(\d+)\.\w+(?:{ending})")
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        if not match or not _is_dead(int(match[1])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _is_dead(pid: int) -> bool:
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: never probe, keep everything
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive under another user; not a process id at all
        return False
    return False
