"""vaegan's cache: what it can compute again (decoded image folders, real-image features, published weights).
Losing it costs time, never a result, so a cache that cannot be written is a warning, not an error."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from vaegan.errors import VaeganError
from vaegan.runs.files import atomic_write

log = logging.getLogger(__name__)
_unwritable: set[Path] = set()  # cache folders already warned about: one warning per folder and process


def cache_dir() -> Path:
    """$VAEGAN_CACHE, else ~/.cache/vaegan."""
    return Path(os.environ.get("VAEGAN_CACHE") or Path.home() / ".cache" / "vaegan").expanduser()


def write_to_cache(path: Path, content: bytes | Callable[[IO[bytes]], None], what: str) -> None:
    """Write `path` atomically; on a read-only or full disk warn once per folder (naming `what` is lost) and go on."""
    try:
        atomic_write(path, content)
    except VaeganError as err:  # atomic_write's one line for a failed write
        if path.parent not in _unwritable:
            _unwritable.add(path.parent)
            log.warning("could not cache %s (%s); they will be computed again next time", what, err)
