"""Sample grids: class-conditional (rows = classes, columns = one fixed z each) or plain, as labelled PNGs."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from vaegan.models import GenerativeModel, evaluation_mode
from vaegan.viz.grid import grid_image, make_grid, save_image, to_uint8


def fixed_latents(model: GenerativeModel, n: int, seed: int) -> torch.Tensor:
    """The same n latents for a seed on every device (drawn on the CPU), so grids compare across runs."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return z.to(next(model.decoder.parameters()).device)


def class_conditional_samples(model: GenerativeModel, classes: list[int], per_class: int, seed: int = 0
                              ) -> torch.Tensor:
    """[len(classes) * per_class, 3, 32, 32] images; row r uses class classes[r], column c latent c."""
    z = fixed_latents(model, per_class, seed).repeat(len(classes), 1)
    y = torch.tensor(classes, device=z.device).repeat_interleave(per_class)
    with evaluation_mode(model):
        return model.generate(z, y)


def sample_grid_image(model: GenerativeModel, class_names: list[str] | None = None, classes: list[int] | None = None,
                      per_class: int = 8, seed: int = 0, scale: int = 3) -> Image.Image:
    """A conditional model: rows = `classes` (default 0-7) labelled with their names. Otherwise an 8x8 grid."""
    if model.conditional:
        classes = list(range(min(8, model.num_classes))) if classes is None else classes
        images = class_conditional_samples(model, classes, per_class, seed)
        names = class_names or [str(c) for c in range(model.num_classes)]
        labels = [f"{c} {names[c]}" for c in classes]
    else:
        z = fixed_latents(model, per_class * per_class, seed)
        with evaluation_mode(model):
            images = model.generate(z)
        labels = None
    return grid_image(make_grid(to_uint8(images), per_class), scale, row_labels=labels)


def save_sample_grid(model: GenerativeModel, path: Path, class_names: list[str] | None = None,
                     classes: list[int] | None = None, per_class: int = 8, seed: int = 0, scale: int = 3) -> Path:
    """`sample_grid_image` written to `path`."""
    return save_image(sample_grid_image(model, class_names, classes, per_class, seed, scale), path)
