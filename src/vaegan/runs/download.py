"""Every download vaegan makes (CIFAR archives, published weights) streams through `stream_url`, so each one
gives up on a silent server instead of waiting forever."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any, BinaryIO

from tqdm import tqdm

DOWNLOAD_TIMEOUT = 60  # seconds a server may stay silent (connecting, or between two reads) before a download fails


def stream_url(url: str, out: BinaryIO, digest: Any, description: str) -> None:
    """Copy `url` into `out`, feeding `digest` (a hashlib object) on the way, with a progress bar. A refused or
    broken connection, an HTTP error, or a server silent for DOWNLOAD_TIMEOUT seconds ends it with an OSError
    saying why; the caller removes what was written."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=description, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:
        raise OSError(_reason(err)) from None


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP error {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):  # connecting failed; the cause is its reason
        err = err.reason if isinstance(err.reason, BaseException) else OSError(str(err.reason))
    if isinstance(err, TimeoutError):
        return f"no answer from the server for {DOWNLOAD_TIMEOUT} s"
    if isinstance(err, http.client.HTTPException):
        return f"the connection broke off ({type(err).__name__})"
    return getattr(err, "strerror", None) or str(err)
