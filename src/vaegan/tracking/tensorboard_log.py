"""TensorBoard (`train.log_to=[tensorboard]`, or the older `train.tensorboard=true`): events in RUN/tensorboard/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vaegan.runs import RunDir
from vaegan.tracking.tracker import flatten, numbers, require


def as_text(values: dict[str, Any]) -> str:
    """Flat `key: value` lines, indented so that TensorBoard's markdown shows them as they are."""
    return "\n".join(f"    {key}: {value}" for key, value in values.items())


class TensorBoardLog:
    """Events in the run folder, which is its run (no id to keep). The leg starting at `first_step` purges the
    events a crashed leg wrote from there on, as metrics.jsonl drops its lines after the checkpoint."""

    name = "tensorboard"
    run_id = None

    def __init__(self, rundir: RunDir, config: dict[str, Any], run_id: str | None, first_step: int):
        self.writer = self.require()(str(rundir.tensorboard), purge_step=first_step)
        if first_step <= 1:
            self.writer.add_text("config", as_text(config))

    @staticmethod
    def require():
        """torch's SummaryWriter, which needs the tensorboard package."""
        return require("torch.utils.tensorboard", "tensorboard", "tensorboard").SummaryWriter

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        for key, value in numbers(values).items():
            self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        with Image.open(png) as image:
            self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def summary(self, values: dict[str, Any]) -> None:
        self.writer.add_text("summary", as_text(flatten(values)))

    def close(self, finished: bool) -> None:
        self.writer.close()
