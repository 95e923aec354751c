"""Optional TensorBoard mirror of a run (`train.tensorboard=true`): the logged scalars and per-epoch grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaegan.errors import VaeganError


def require_tensorboard():
    """torch's SummaryWriter, or one clear error when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise VaeganError("train.tensorboard=true needs TensorBoard: pip install 'vaegan[tensorboard]' "
                          "(or pip install tensorboard), or set train.tensorboard=false") from None
    return SummaryWriter


class TensorBoardLog:
    """Events in `folder` (RUN/tensorboard/). `first_step` is where this leg of the run starts: events a crashed leg wrote
    from there on are dropped, as metrics.jsonl drops its lines after the checkpoint."""

    def __init__(self, folder: Path, first_step: int):
        self.writer = require_tensorboard()(str(folder), purge_step=first_step)

    def scalars(self, kind: str, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        with Image.open(png) as image:
            self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()
