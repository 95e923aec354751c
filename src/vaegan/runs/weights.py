"""Published weight files vaegan uses but never trains (FID's Inception, VGG16 for the perceptual loss): found at
a configured path, an environment variable or the cache, downloaded into the cache only after a sha256 check,
and read as a plain dict of tensors (weights_only) whose problems are one VaeganError naming the file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from vaegan.errors import VaeganError
from vaegan.runs.download import stream_url
from vaegan.runs.files import download_temp_pattern, remove_stale_temp_files, temp_prefix


@dataclass(frozen=True)
class WeightsFile:
    what: str  # e.g. "Inception weights for FID/KID/IS", for messages
    name: str  # the published file name; its hash part is the start of the file's sha256
    url: str
    sha256_prefix: str
    env_var: str
    config_key: str  # the config key that names a path

    def _missing(self, cache: Path, reason: str) -> VaeganError:
        return VaeganError(f"{self.what} are not available ({reason}): download {self.url} and set "
                           f"{self.env_var}=/path/to/{self.name} (or {self.config_key}), or place it at {cache}")

    def path(self, configured: str | None, cache_dir: Path, download: bool = True) -> Path:
        """The configured path, else $env_var, else the cache (downloaded into it when absent and `download`)."""
        chosen = configured or os.environ.get(self.env_var)
        cache = Path(cache_dir) / self.name
        if chosen:
            path = Path(chosen).expanduser()
            if not path.is_file():
                raise self._missing(cache, f"no file at {path}")
            return path
        if cache.is_file():
            return cache
        if not download:
            raise self._missing(cache, "not in the cache and download is off")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            self._download(cache)
        except OSError as err:
            raise self._missing(cache, f"download impossible: {err}") from None
        return cache

    def present(self, configured: str | None, cache_dir: Path) -> Path | None:
        """The file when one is configured or already cached, else None (never downloads): for callers that add
        what it enables only where it is at hand."""
        if not (configured or os.environ.get(self.env_var) or (Path(cache_dir) / self.name).is_file()):
            return None
        return self.path(configured, cache_dir, download=False)

    def _download(self, cache: Path) -> None:
        """Fetch into a temp file of this process (two processes may fetch at once) and move it into place once
        checked; the temp file goes on any failure (a timeout, Ctrl-C), and those killed downloads left are
        removed first."""
        remove_stale_temp_files(cache.parent, download_temp_pattern(cache.name, ".part"))
        handle, partial_name = tempfile.mkstemp(dir=cache.parent, prefix=temp_prefix(cache.name), suffix=".part")
        partial, digest = Path(partial_name), hashlib.sha256()
        try:
            with os.fdopen(handle, "wb") as out:
                stream_url(self.url, out, digest, f"downloading {self.name}")
            if not digest.hexdigest().startswith(self.sha256_prefix):
                raise self._missing(cache, "the downloaded file failed its sha256 check")
            os.replace(partial, cache)
        finally:
            partial.unlink(missing_ok=True)


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A file of named tensors, loaded with weights_only; anything else is one VaeganError saying the file is
    not `what`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one message naming it
        raise VaeganError(f"cannot read {what} {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict):  # a tensor, a list, ...: weights_only loads any plain data
        raise VaeganError(f"{path} is not the {what} file (it holds a {type(state).__name__}, not a dict of "
                          f"tensors)")
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise VaeganError(f"{path} is not the {what} file (some of its entries are not named tensors)")
    return state
