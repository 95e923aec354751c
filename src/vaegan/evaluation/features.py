"""Features of real and generated images for the distribution metrics, batched in inference mode, and a cache
of the real-image features keyed by what made them."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vaegan.data import BatchLoader, ImageDataset
from vaegan.evaluation.reconstruction import evaluation_mode
from vaegan.models import GenerativeModel

BATCH = 250
Extractor = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # images in [-1, 1] -> named feature tensors
COMPUTED: Counter[str] = Counter()  # cache key -> times its features were computed in this process


def generated_batches(model: GenerativeModel, n: int, seed: int, batch: int = BATCH
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """n samples G(z, y), z from a seeded CPU generator, labels cycling through the classes (balanced)."""
    device = next(model.decoder.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    classes = max(model.num_classes, 1)
    with evaluation_mode(model):
        for start in range(0, n, batch):
            size = min(batch, n - start)
            z = torch.randn(size, model.latent_dim, generator=generator).to(device)
            y = (torch.arange(start, start + size) % classes).to(device)
            yield model.decoder(z, model.labels(y)), y


def real_batches(dataset: ImageDataset, device: torch.device, batch: int = BATCH
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return BatchLoader(dataset, batch, shuffle=False, drop_last=False, device=device).epoch_batches(0)


def extract(batches, extractor: Extractor) -> dict[str, np.ndarray]:
    """Run `extractor` over (images, labels) batches; float32 arrays per feature name, plus "labels"."""
    parts: dict[str, list[np.ndarray]] = {"labels": []}
    with torch.inference_mode():
        for images, labels in batches:
            for name, value in extractor(images).items():
                parts.setdefault(name, []).append(value.float().cpu().numpy())
            parts["labels"].append(labels.cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def cached_features(cache_dir: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Features stored under `key` (which must name dataset, split, extractor, its weights hash and the count),
    computed and written atomically on first use."""
    path = Path(cache_dir) / "features" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    features = compute()
    COMPUTED[key] += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(partial, "wb") as f:
        np.savez(f, **features)
    os.replace(partial, path)
    return features
