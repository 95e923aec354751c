"""The figures of a run, one function each, as PIL images; the API, the report and the trainer's per-epoch
figures call them and decide where (and whether) they are written."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from vaegan.data import ImageDataset, sequential_batches
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.models import GenerativeModel, evaluation_mode
from vaegan.viz.grid import grid_image, make_grid, reconstruction_grid, save_image, to_uint8
from vaegan.evaluation.interpolation import interpolation_rows


def first_images(dataset: ImageDataset, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of a split in [-1, 1] and their labels (a fixed, comparable choice)."""
    return next(sequential_batches(dataset.head(n), device, batch_size=n))


def reconstruction_image(model: GenerativeModel, x: torch.Tensor, y: torch.Tensor, note: str = ""
                         ) -> tuple[Image.Image, float]:
    """Real rows above reconstruction rows (from the posterior mean), captioned with their per-pixel MSE and
    `note`; returns the image and that MSE."""
    with evaluation_mode(model):
        x_hat, _, _ = model(x, y)
    mse = (x_hat - x).pow(2).mean().item()
    caption = f"per-pixel MSE in [-1,1] of these {len(x)} images: {mse:.4f}" + (f"\n{note}" if note else "")
    return grid_image(reconstruction_grid(x, x_hat), scale=3, caption=caption), mse


def save_reconstructions(model: GenerativeModel, x: torch.Tensor, y: torch.Tensor, path: Path, note: str = ""
                         ) -> float:
    """`reconstruction_image` written to `path`; returns its MSE."""
    image, mse = reconstruction_image(model, x, y, note)
    save_image(image, path)
    return mse


def reconstruction_figure(model: GenerativeModel, dataset: ImageDataset, n: int, device: torch.device
                          ) -> tuple[Image.Image, dict[str, float]]:
    """The first n images of a split over their reconstructions, with the per-pixel MSE of those n and of the
    whole split."""
    if model.encoder is None:
        raise ValueError("this model has no encoder: it cannot reconstruct")
    split_mse = evaluate_reconstruction(model, sequential_batches(dataset, device), beta=0.0)["mse_per_pixel"]
    x, y = first_images(dataset, n, device)
    note = f"per-pixel MSE of all {len(dataset)} {dataset.split} images: {split_mse:.4f}"
    image, batch_mse = reconstruction_image(model, x, y, note)
    return image, {"batch_mse_per_pixel": batch_mse, "split_mse_per_pixel": split_mse, "images": len(dataset)}


def interpolation_figure(model: GenerativeModel, dataset: ImageDataset, pairs: int, steps: int, mode: str,
                         seed: int, device: torch.device) -> dict[str, Image.Image]:
    """Rows = pairs of random test images (seeded), endpoints' real images at the ends of each row: the path
    between their means ("latent"), and for conditional models the label path at fixed z ("label")."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:2 * pairs]
    subset = ImageDataset(dataset.name, dataset.split, dataset.images[order], dataset.labels[order],
                          dataset.class_names)
    x, y = first_images(subset, 2 * pairs, device)
    rows = interpolation_rows(model, x, y, steps, mode)
    names = [f"{dataset.class_names[a]} -> {dataset.class_names[b]}" for a, b in zip(y[0::2], y[1::2])]
    captions = {"latent": f"{mode} path between the two posterior means, at the first image's label",
                "label": "the first image's mean at labels along the path between the two label embeddings"}
    return {kind: grid_image(make_grid(to_uint8(images), steps + 2), scale=2, row_labels=names,
                             caption=captions[kind])
            for kind, images in rows.items()}


def interpolation_paths(path: Path, kinds: list[str]) -> dict[str, Path]:
    """Where each kind of interpolation figure goes: the latent path at `path`, the label path beside it."""
    path = Path(path)
    return {kind: path if kind == "latent" else path.with_name(f"{path.stem}-labels.png") for kind in kinds}
