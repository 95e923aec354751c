"""Training from Python: `vaegan.train` and `vaegan.resume`, the same runs as `vaegan train` makes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaegan.api.run import Run
from vaegan.config import apply_overrides, load_preset
from vaegan import experiment


def default_run_dir(preset: str) -> Path:
    return Path(f"runs/{preset}-{time.strftime('%Y%m%d-%H%M%S')}")


def train(preset: str, run_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
          overwrite: bool = False, device: str = "auto") -> Run:
    """Train `preset` (see `vaegan presets`) with dotted-key `overrides` ({"train.max_steps": 200}) into
    `run_dir` (default runs/PRESET-DATE-TIME). `overwrite` replaces an earlier run there; files vaegan did not
    write are never touched. Returns the finished run, its model opened on `device` at first use."""
    cfg = apply_overrides(load_preset(preset), dict(overrides or {}))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(preset)
    experiment.train(cfg, run_dir, overwrite=overwrite)
    return Run(run_dir, device)


def resume(run_dir: str | Path, overrides: Mapping[str, Any] | None = None, *, device: str = "auto") -> Run:
    """Continue a run from its last checkpoint; only schedule keys (train.max_steps, train.epochs, ...) and where
    the data lives may change. Returns the finished run."""
    experiment.resume(Path(run_dir), dict(overrides or {}))
    return Run(run_dir, device)
