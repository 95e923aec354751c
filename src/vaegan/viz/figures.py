"""The figures of a run, one function each; the CLI commands and the trainer's per-epoch figures call them."""

from __future__ import annotations

from pathlib import Path

import torch

from vaegan.data import ImageDataset, sequential_batches
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.models import GenerativeModel, evaluation_mode
from vaegan.viz.grid import make_grid, reconstruction_grid, save_png, to_uint8
from vaegan.evaluation.interpolation import interpolation_rows


def first_images(dataset: ImageDataset, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of a split in [-1, 1] and their labels (a fixed, comparable choice)."""
    return next(sequential_batches(dataset.head(n), device, batch_size=n))


def save_reconstructions(model: GenerativeModel, x: torch.Tensor, y: torch.Tensor, path: Path, note: str = ""
                         ) -> float:
    """Real rows above reconstruction rows (from the posterior mean), captioned with their per-pixel MSE and
    `note`; returns that MSE."""
    with evaluation_mode(model):
        x_hat, _, _ = model(x, y)
    mse = (x_hat - x).pow(2).mean().item()
    caption = f"per-pixel MSE in [-1,1] of these {len(x)} images: {mse:.4f}" + (f"\n{note}" if note else "")
    save_png(reconstruction_grid(x, x_hat), path, scale=3, caption=caption)
    return mse


def reconstruction_figure(model: GenerativeModel, dataset: ImageDataset, n: int, path: Path,
                          device: torch.device) -> dict[str, float]:
    """The first n images of a split over their reconstructions, with the per-pixel MSE of those n and of the
    whole split."""
    if model.encoder is None:
        raise ValueError("this model has no encoder: it cannot reconstruct")
    split_mse = evaluate_reconstruction(model, sequential_batches(dataset, device), beta=0.0)["mse_per_pixel"]
    x, y = first_images(dataset, n, device)
    note = f"per-pixel MSE of all {len(dataset)} {dataset.split} images: {split_mse:.4f}"
    batch_mse = save_reconstructions(model, x, y, path, note)
    return {"batch_mse_per_pixel": batch_mse, "split_mse_per_pixel": split_mse, "images": len(dataset)}


def interpolation_figure(model: GenerativeModel, dataset: ImageDataset, pairs: int, steps: int, mode: str,
                         seed: int, path: Path, device: torch.device) -> list[Path]:
    """Rows = pairs of random test images (seeded), endpoints' real images at the ends of each row. Conditional
    models also get the label path at fixed z, in a second file beside `path` (`*-labels.png`)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:2 * pairs]
    subset = ImageDataset(dataset.name, dataset.split, dataset.images[order], dataset.labels[order],
                          dataset.class_names)
    x, y = first_images(subset, 2 * pairs, device)
    rows = interpolation_rows(model, x, y, steps, mode)
    names = [f"{dataset.class_names[a]} -> {dataset.class_names[b]}" for a, b in zip(y[0::2], y[1::2])]
    written = []
    for kind, images in rows.items():
        out = Path(path) if kind == "latent" else Path(path).with_name(f"{Path(path).stem}-labels.png")
        caption = (f"{mode} path between the two posterior means, at the first image's label" if kind == "latent"
                   else "the first image's mean at labels along the path between the two label embeddings")
        save_png(make_grid(to_uint8(images), steps + 2), out, scale=2, row_labels=names, caption=caption)
        written.append(out)
    return written
