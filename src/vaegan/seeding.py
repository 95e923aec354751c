"""Derived seeds, so every random stream is a pure function of its coordinates and resuming needs no saved state."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed hashed from `parts`; (seed, epoch) and (seed, epoch, batch) give unrelated streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
