"""Image grids as PIL images and PNG files, made with Pillow (no torchvision)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vaegan.runs import atomic_write

LABEL_FONT_SIZE = 13
FIGURE_DPI = 110
MAX_LABEL_CHARS = 32  # a longer row label (a class folder's name, say) is cut, so the margin stays narrow


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


def grid_image(grid: torch.Tensor, scale: int = 1, row_labels: list[str] | None = None, padding: int = 2,
               caption: str | None = None) -> Image.Image:
    """A uint8 [C,H,W] image as a PIL image; `scale` enlarges with nearest-neighbour so small images stay crisp.

    `row_labels` (one per grid row, for a grid made by `make_grid` with `padding`) are written left of the rows,
    `caption` (lines of text) below the image.
    """
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(array), mode="RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if row_labels:
        image = _with_row_labels(image, row_labels, padding * scale)
    if caption:
        image = _with_caption(image, caption)
    return image


def save_image(image: Image.Image, path: Path) -> Path:
    """A PIL image as a PNG file, written atomically like every other file of a run."""
    return atomic_write(Path(path), lambda f: image.save(f, format="PNG"))


def save_png(grid: torch.Tensor, path: Path, **options) -> Path:
    """`grid_image(grid, **options)` written to `path`."""
    return save_image(grid_image(grid, **options), path)


def figure_image(figure, dpi: int = FIGURE_DPI) -> Image.Image:
    """A matplotlib Figure as a PIL image (rendered in memory)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB")


def save_figure(figure, path: Path, dpi: int = FIGURE_DPI) -> Path:
    """A matplotlib Figure as a PNG file, written atomically like every other file of a run."""
    return atomic_write(Path(path), lambda f: figure.savefig(f, format="png", dpi=dpi))


def reconstruction_grid(real: torch.Tensor, recon: torch.Tensor, ncol: int = 8) -> torch.Tensor:
    """Rows alternate real / reconstruction, `ncol` images each, so each pair sits one above the other."""
    rows = []
    for start in range(0, len(real), ncol):
        rows += [to_uint8(real[start:start + ncol]), to_uint8(recon[start:start + ncol])]
    padded = [torch.cat([r, torch.full((ncol - len(r), *r.shape[1:]), 255, dtype=torch.uint8)]) for r in rows]
    return make_grid(torch.cat(padded), ncol)


def _one_line(text: str) -> str:
    """`text` as one line Pillow can draw: a newline, tab or other control character becomes a space."""
    return "".join(char if char.isprintable() else " " for char in text)


def _with_row_labels(image: Image.Image, labels: list[str], padding: int) -> Image.Image:
    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    labels = [_one_line(label if len(label) <= MAX_LABEL_CHARS else label[:MAX_LABEL_CHARS - 3] + "...")
              for label in labels]
    margin = int(max(ImageDraw.Draw(image).textlength(label, font=font) for label in labels)) + 12
    canvas = Image.new("RGB", (image.width + margin, image.height), (255, 255, 255))
    canvas.paste(image, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_height = (image.height - padding) / len(labels)  # each row: its images plus the padding above them
    for r, label in enumerate(labels):
        draw.text((6, padding + (r + 0.5) * row_height - padding / 2), label, fill=(0, 0, 0), font=font,
                  anchor="lm")
    return canvas


def _with_caption(image: Image.Image, caption: str) -> Image.Image:
    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    lines = [_one_line(line) for line in caption.splitlines()]
    line_height = LABEL_FONT_SIZE + 5
    width = max(image.width, int(max(ImageDraw.Draw(image).textlength(line, font=font) for line in lines)) + 12)
    canvas = Image.new("RGB", (width, image.height + line_height * len(lines) + 8), (255, 255, 255))
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, image.height + 4 + i * line_height), line, fill=(0, 0, 0), font=font)
    return canvas
