"""shapes10: a toy procedural dataset of ten coloured shapes, for offline try-outs and learning tests.

It is not CIFAR and says nothing about CIFAR results; it only needs no download and is easy to learn.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vaegan.data.dataset import ImageDataset
from vaegan.seeding import derive_seed

Mask = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# Each mask takes offsets from the shape centre (dy [n,32,1], dx [n,1,32]) and a size r [n,1,1].
def _disc(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return dy**2 + dx**2 <= r**2


def _square(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(abs(dy), abs(dx)) <= 0.8 * r


def _triangle(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2)


def _horizontal_bar(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (abs(dy) <= 0.25 * r) & (abs(dx) <= r)


def _vertical_bar(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _horizontal_bar(dx, dy, r)


def _cross(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _horizontal_bar(dy, dx, r) | _vertical_bar(dy, dx, r)


def _ring(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    squared = dy**2 + dx**2
    return (squared <= r**2) & (squared >= (0.55 * r) ** 2)


def _diamond(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return abs(dy) + abs(dx) <= r


def _x(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (abs(abs(dy) - abs(dx)) <= 0.25 * r + 0.5) & (np.maximum(abs(dy), abs(dx)) <= 0.85 * r)


def _checker(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    cells = (np.floor(dy / 3) + np.floor(dx / 3)) % 2 == 0
    return cells & (np.maximum(abs(dy), abs(dx)) <= r)


_SHAPES: tuple[tuple[str, tuple[int, int, int], Mask], ...] = (
    ("red disc", (220, 40, 40), _disc),
    ("green square", (40, 200, 40), _square),
    ("blue triangle", (50, 70, 235), _triangle),
    ("yellow cross", (235, 220, 40), _cross),
    ("magenta ring", (220, 40, 220), _ring),
    ("cyan horizontal bar", (40, 210, 220), _horizontal_bar),
    ("white vertical bar", (245, 245, 245), _vertical_bar),
    ("orange diamond", (250, 140, 20), _diamond),
    ("purple x", (140, 50, 210), _x),
    ("grey checker", (150, 150, 150), _checker),
)
SHAPES10_CLASS_NAMES = [name for name, _, _ in _SHAPES]


def make_shapes10(split: str = "train", seed: int = 0, train_size: int = 10_000,
                  test_size: int = 2_000) -> ImageDataset:
    """Generate one split; the same (seed, split) always gives the same images, and train and test differ."""
    size = train_size if split == "train" else test_size
    rng = np.random.default_rng(derive_seed(seed, "shapes10", split))
    labels = rng.permutation(np.arange(size) % len(_SHAPES))  # balanced classes
    radius = rng.uniform(6.0, 12.0, size)
    centre_y, centre_x = radius + rng.uniform(0.0, 1.0, (2, size)) * (31.0 - 2 * radius)
    grid = np.arange(32, dtype=np.float32)
    dy = grid[None, :, None] - centre_y[:, None, None]
    dx = grid[None, None, :] - centre_x[:, None, None]
    # Dark background (a random tint per image plus per-pixel noise, at most 89) and jittered shape colours.
    images = rng.integers(0, 40, (size, 3, 1, 1), dtype=np.uint8) + rng.integers(0, 50, (size, 3, 32, 32),
                                                                                  dtype=np.uint8)
    colours = np.array([colour for _, colour, _ in _SHAPES])[labels] + rng.integers(-20, 21, (size, 3))
    colours = colours.clip(0, 255).astype(np.uint8)

    for label, (_, _, mask_of) in enumerate(_SHAPES):
        chosen = labels == label
        mask = mask_of(dy[chosen], dx[chosen], radius[chosen, None, None])
        images[chosen] = np.where(mask[:, None], colours[chosen, :, None, None], images[chosen])

    return ImageDataset(
        name="shapes10", split=split,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(SHAPES10_CLASS_NAMES),
    )
