"""Weights & Biases (`train.log_to=[wandb]`, the `vaegan[wandb]` extra).

How wandb logs is its own configuration: WANDB_PROJECT (default "vaegan"), WANDB_ENTITY, WANDB_MODE (offline
keeps everything local for a later `wandb sync RUN/wandb/offline-run-*`). Its local files go to RUN/wandb/, with
the run's other files. The wandb run is named after the run folder; its id is kept in RUN/trackers.json so that a
resume continues the same wandb run. Those files are complete when the process ends: wandb-core may write their
last block after `run.finish()` has returned, and wandb's exit hook waits for it (in a notebook,
`wandb.teardown()` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vaegan.runs import RunDir
from vaegan.tracking.tracker import flatten, numbers, require, start_error


class WandbLog:
    name = "wandb"

    def __init__(self, rundir: RunDir, config: dict[str, Any], run_id: str | None, first_step: int):
        self.wandb = self.require()
        try:
            # reinit="create_new": the members of a fused group are runs of their own in one process, and a
            # user's own active run (a notebook's) is left alone
            self.run = self.wandb.init(dir=rundir.path, project=os.environ.get("WANDB_PROJECT", "vaegan"),
                                       name=rundir.path.name, id=run_id, resume="allow", config=config,
                                       reinit="create_new",
                                       settings=self.wandb.Settings(console="off"))  # vaegan's lines stay as they are
        except Exception as err:  # wandb raises its own errors for a missing login, a network failure, ...
            raise start_error("wandb", err, "log in with `wandb login`, or set WANDB_MODE=offline") from None
        self.run_id = self.run.id

    @staticmethod
    def require():
        return require("wandb", "wandb", "wandb")

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self.run.log({f"{kind}/{key}": value for key, value in numbers(values).items()}, step=step)

    def image(self, tag: str, png: Path, step: int) -> None:
        self.run.log({tag: self.wandb.Image(str(png))}, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update({key: value for key, value in flatten(values).items()
                                 if isinstance(value, (int, float, str))})

    def close(self, finished: bool) -> None:
        self.run.finish(exit_code=0 if finished else 1)
