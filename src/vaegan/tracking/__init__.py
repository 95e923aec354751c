"""Experiment trackers a run also logs to: `train.log_to=[tensorboard, wandb, mlflow]`, any combination
(`train.tensorboard=true` is the same as tensorboard in the list). Only rank 0 of a torchrun group logs."""

from __future__ import annotations

from vaegan.config import Config
from vaegan.config import flatten as flatten_config
from vaegan.errors import VaeganError
from vaegan.runs import RunDir
from vaegan.tracking.mlflow_log import MlflowLog
from vaegan.tracking.tensorboard_log import TensorBoardLog
from vaegan.tracking.tracker import Tracker, Trackers
from vaegan.tracking.wandb_log import WandbLog

TRACKERS: dict[str, type] = {"tensorboard": TensorBoardLog, "wandb": WandbLog, "mlflow": MlflowLog}

__all__ = ["TRACKERS", "Tracker", "Trackers", "open_trackers", "require_trackers", "tracker_names"]


def tracker_names(cfg: Config) -> list[str]:
    """The trackers a config asks for, in order, each once."""
    return list(dict.fromkeys([*(["tensorboard"] if cfg.train.tensorboard else []), *cfg.train.log_to]))


def require_trackers(cfg: Config) -> None:
    """Each asked-for tracker's package, checked before any training starts (one line saying how to install it)."""
    for name in tracker_names(cfg):
        TRACKERS[name].require()


def _saved_ids(rundir: RunDir) -> dict[str, str]:
    try:
        ids = rundir.read_json(rundir.trackers) or {}
        readable = all(isinstance(value, str) for value in ids.values())
    except VaeganError:  # not JSON at all: the same line, saying what to do about this file
        readable = False
    if not readable:
        raise VaeganError(f"{rundir.trackers} is corrupt: it should map tracker names to run ids; delete it to "
                          "start new tracker runs")
    return ids


def open_trackers(cfg: Config, rundir: RunDir, first_step: int) -> Trackers:
    """Start (or, for a resumed run, continue) the trackers of `cfg` for the leg starting at `first_step`; the
    run ids of new tracker runs go to RUN/trackers.json. A tracker that cannot start is one VaeganError (the
    others are closed)."""
    names = tracker_names(cfg)
    if not names:
        return Trackers([])
    config = flatten_config(cfg.to_dict(), where="the run's config")
    saved = _saved_ids(rundir)
    ids = dict(saved)
    opened: list[Tracker] = []
    try:
        for name in names:
            try:
                opened.append(TRACKERS[name](rundir, config, saved.get(name), first_step))
            except VaeganError as err:
                if name not in saved:
                    raise
                raise VaeganError(f"{err}; the run continues {name} run {saved[name]} (named in {rundir.trackers}: "
                                  "delete that file to start new tracker runs)") from None
            if opened[-1].run_id is not None:
                ids[name] = opened[-1].run_id
        if ids != saved:
            rundir.write_json(rundir.trackers, ids)
    except BaseException:
        Trackers(opened).close(finished=False)
        raise
    return Trackers(opened)
