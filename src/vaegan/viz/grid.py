"""Image grids as PNG, written with Pillow (no torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1,1] floats -> uint8 in [0,255]; exact inverse of the loader's `u8 / 127.5 - 1`."""
    return ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def make_grid(images: torch.Tensor, ncol: int, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """Tile uint8 images [N,C,H,W] into one uint8 image [C, rows*(H+p)+p, ncol*(W+p)+p], row-major."""
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    grid = torch.full((c, nrow * (h + padding) + padding, ncol * (w + padding) + padding), pad_value,
                      dtype=torch.uint8)
    for i in range(n):
        top = padding + (i // ncol) * (h + padding)
        left = padding + (i % ncol) * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


def save_png(grid: torch.Tensor, path: Path, scale: int = 1) -> Path:
    """Save a uint8 [C,H,W] image; `scale` enlarges with nearest-neighbour so small images stay crisp."""
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(array), mode="RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def reconstruction_grid(real: torch.Tensor, recon: torch.Tensor, ncol: int = 8) -> torch.Tensor:
    """Rows alternate real / reconstruction, `ncol` images each, so each pair sits one above the other."""
    rows = []
    for start in range(0, len(real), ncol):
        rows += [to_uint8(real[start:start + ncol]), to_uint8(recon[start:start + ncol])]
    padded = [torch.cat([r, torch.full((ncol - len(r), *r.shape[1:]), 255, dtype=torch.uint8)]) for r in rows]
    return make_grid(torch.cat(padded), ncol)
