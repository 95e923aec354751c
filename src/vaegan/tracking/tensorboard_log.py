"""TensorBoard (`train.log_to=[tensorboard]`, or the older `train.tensorboard=true`): events in RUN/tensorboard/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vaegan.tracking.tracker import numbers, require


def require_tensorboard():
    """torch's SummaryWriter (train.tensorboard=true asks for it too)."""
    return require("torch.utils.tensorboard", "tensorboard", "tensorboard").SummaryWriter


class TensorBoardLog:
    """Events in `folder`. `first_step` is where this leg of the run starts: events a crashed leg wrote from there
    on are dropped, as metrics.jsonl drops its lines after the checkpoint."""

    name = "tensorboard"

    def __init__(self, folder: Path, first_step: int, config: dict[str, Any]):
        self.writer = require_tensorboard()(str(folder), purge_step=first_step)
        if first_step <= 1:
            self.writer.add_text("config", "\n".join(f"    {key}: {value}" for key, value in config.items()))

    def scalars(self, kind: str, step: int, values: dict[str, Any]) -> None:
        for key, value in numbers(values).items():
            self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        with Image.open(png) as image:
            self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def summary(self, values: dict[str, Any]) -> None:
        self.writer.add_text("summary", "\n".join(f"    {key}: {value}" for key, value in values.items()))

    def close(self, finished: bool) -> None:
        self.writer.close()
