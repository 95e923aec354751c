"""What every experiment tracker receives, and the fan-out that keeps a failing tracker from stopping training.

A tracker starts with the config (flattened `section.key` values), then gets the scalar records as the run logs
them (`train` records as they are flushed, `test` metrics and `quality` records at epoch ends), the per-epoch
grids (PNG files) and the summary at the end. Steps are the training step. After a crash, the steps between the
last checkpoint and the crash are sent again by the resumed leg: metrics.jsonl and TensorBoard drop the old ones,
MLflow keeps both values of such a step, wandb keeps the first (it ignores steps below the ones it has).
"""

from __future__ import annotations

import importlib
import logging
import numbers as number_types
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from vaegan.errors import VaeganError

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """One tracker's run. Its class is built as `cls(rundir, config, run_id, first_step)`: a new run (`run_id`
    None), or the one a resumed run logged to, for the leg that starts at `first_step`; a tracker that cannot
    start is one VaeganError. `cls.require()` checks its package before training starts."""

    name: str
    run_id: str | None  # what finds its run again on a resume (kept in RUN/trackers.json); None: the run folder

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None: ...

    def image(self, tag: str, png: Path, step: int) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def close(self, finished: bool) -> None: ...


def require(module: str, tracker: str, package: str) -> ModuleType:
    """A tracker's package, or one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VaeganError(f"logging to {tracker} needs {package}: pip install 'vaegan[{tracker}]' (or pip install "
                          f"{package}), or leave {tracker} out of train.log_to") from None


def start_error(tracker: str, err: Exception, hint: str) -> VaeganError:
    """The one line for a tracker that cannot start (a missing login, an unreachable server, a bad store)."""
    return VaeganError(f"{tracker} could not start a run ({type(err).__name__}: {first_line(err)}); {hint}")


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


def numbers(values: dict[str, Any]) -> dict[str, float]:
    """The real numbers of a record, finite or not (booleans and text left out)."""
    return {key: float(value) for key, value in values.items()
            if isinstance(value, number_types.Real) and not isinstance(value, bool)}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'test': {'kl': 1.0}} -> {'test/kl': 1.0}: nested records as the flat keys trackers take."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


class Trackers:
    """The trackers of one run, called together. A tracker whose call fails (a lost connection, a full disk) is
    dropped with one warning; training goes on, and metrics.jsonl keeps every value."""

    def __init__(self, trackers: list[Tracker]):
        self.live = list(trackers)

    def _each(self, call: str, *args: Any) -> None:
        for tracker in list(self.live):
            try:
                getattr(tracker, call)(*args)
            except Exception as err:  # a tracker's failure of any kind must not end the training run
                log.warning("%s stopped logging (%s: %s); training goes on, metrics.jsonl has every value",
                            tracker.name, type(err).__name__, first_line(err))
                self.live.remove(tracker)

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self._each("scalars", kind, step, values)

    def image(self, tag: str, png: Path, step: int) -> None:
        self._each("image", tag, png, step)

    def summary(self, values: dict[str, Any]) -> None:
        self._each("summary", values)

    def close(self, finished: bool) -> None:
        """End each tracker's run: finished, or stopped by a failure (a resume continues it)."""
        self._each("close", finished)
        self.live = []
