"""Weights & Biases (`train.log_to=[wandb]`, the `vaegan[wandb]` extra).

Where and how wandb logs is wandb's own configuration: WANDB_PROJECT (default "vaegan"), WANDB_ENTITY,
WANDB_MODE (offline keeps everything in ./wandb for a later `wandb sync`), WANDB_DIR. The run is named after
the run folder; its id is kept in RUN/trackers.json so that a resume continues the same wandb run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vaegan.errors import VaeganError
from vaegan.tracking.tracker import flatten, numbers, require


def require_wandb():
    return require("wandb", "wandb", "wandb")


class WandbLog:
    name = "wandb"

    def __init__(self, run_name: str, run_id: str | None, config: dict[str, Any]):
        """A new wandb run (`run_id` None) or the one a resumed run logged to."""
        wandb = require_wandb()
        self.wandb = wandb
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "vaegan"), name=run_name,
                                  id=run_id, resume="allow", config=config,
                                  settings=wandb.Settings(console="off"))  # vaegan's own lines stay as they are
        except Exception as err:  # wandb raises its own errors for a missing login, a network failure, ...
            raise VaeganError(f"wandb could not start a run ({type(err).__name__}: {str(err).strip()[:300]}); log "
                              "in with `wandb login`, or set WANDB_MODE=offline") from None

    @property
    def run_id(self) -> str:
        return self.run.id

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self.run.log({f"{kind}/{key}": value for key, value in numbers(values).items()}, step=step)

    def image(self, tag: str, png: Path, step: int) -> None:
        with Image.open(png) as image:
            self.run.log({tag: self.wandb.Image(np.asarray(image.convert("RGB")))}, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update({key: value for key, value in flatten(values).items()
                                 if isinstance(value, (int, float, str))})

    def close(self, finished: bool) -> None:
        self.run.finish(exit_code=0 if finished else 1)
