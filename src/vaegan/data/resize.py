"""The one way the user's own images become the models' 32x32: the shorter side resized to 32 pixels (bicubic),
then the centre cropped. `data.name=folder` (decoded files) and `data.name=npz` (arrays of another size) both use
it, so the same picture gives the same pixels from either."""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32
# An image longer than this many times its shorter side keeps only that much of its centre before the resize:
# the crop never reaches beyond it, and a 2,000,000x1 strip would otherwise be resized to 64,000,000x32 pixels.
MAX_ASPECT = 64


def resize_and_crop(rgb: Image.Image) -> np.ndarray:
    """An RGB image as uint8 [32, 32, 3]: shorter side to 32 (bicubic), centre crop."""
    width, height = rgb.size
    short = min(width, height)
    if max(width, height) > MAX_ASPECT * short:
        keep_w, keep_h = min(width, MAX_ASPECT * short), min(height, MAX_ASPECT * short)
        left, top = (width - keep_w) // 2, (height - keep_h) // 2
        rgb = rgb.crop((left, top, left + keep_w, top + keep_h))
        width, height = rgb.size
    scale = SIDE / short
    size = (max(SIDE, round(width * scale)), max(SIDE, round(height * scale)))
    resized = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (size[0] - SIDE) // 2, (size[1] - SIDE) // 2
    return np.asarray(resized.crop((left, top, left + SIDE, top + SIDE)), dtype=np.uint8)
