import numpy as np
import pytest
from PIL import Image

from vaegan.data.resize import MAX_ASPECT, SIDE, resize_and_crop


def resize_then_crop(rgb):
    """The whole image resized (shorter side to 32, bicubic), then the centre cropped: the plain rule."""
    scale = SIDE / min(rgb.size)
    size = (max(SIDE, round(rgb.width * scale)), max(SIDE, round(rgb.height * scale)))
    left, top = (size[0] - SIDE) // 2, (size[1] - SIDE) // 2
    resized = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(resized.crop((left, top, left + SIDE, top + SIDE)))


@pytest.mark.parametrize("size", [(32, 32), (90, 40), (40, 90), (33, 31), (640, 480), (333, 500), (1024, 768),
                                  (7, 5), (20, 20 * MAX_ASPECT), (30 * MAX_ASPECT, 30)])
def test_images_up_to_the_aspect_bound_are_the_plain_resize_then_crop_byte_for_byte(size):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    out = resize_and_crop(rgb)
    assert out.shape == (SIDE, SIDE, 3) and out.dtype == np.uint8
    assert np.array_equal(out, resize_then_crop(rgb))


def test_beyond_the_bound_the_centre_is_kept_as_the_plain_rule_would():
    rng = np.random.default_rng(1)
    smooth = Image.fromarray(rng.integers(0, 256, (3, 3 * 200, 3), dtype=np.uint8)).resize((20 * 200, 20))
    out = resize_and_crop(smooth)  # 200:1, cropped to 64:1 first
    assert np.abs(out.astype(int) - resize_then_crop(smooth)).max() <= 2
