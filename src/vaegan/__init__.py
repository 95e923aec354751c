"""vaegan: train, evaluate and compare VAE-family image generators on CIFAR-10 and CIFAR-100.

The Python API (vaegan.api) is importable from here: `vaegan.train`, `vaegan.resume`, `vaegan.open_run`. It is
loaded on first use, so that `import vaegan` and the command line's start stay free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Encoding", "Picture", "Run", "open_run", "quality_curves", "resume", "train", "__version__"]

if TYPE_CHECKING:
    from vaegan.api import Encoding, Picture, Run, open_run, quality_curves, resume, train


def __getattr__(name: str):
    if name in __all__:
        from vaegan import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaegan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
