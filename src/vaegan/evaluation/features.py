"""Features of real and generated images for the distribution metrics, batched in inference mode, and a cache
of the real-image features keyed by what made them."""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaegan.data import ImageDataset, sequential_batches
from vaegan.models import GenerativeModel, evaluation_mode
from vaegan.runs.cache import write_to_cache


BATCH = 250  # half the usual eval batch: the Inception network's 299x299 activations are large
Extractor = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # images in [-1, 1] -> named feature tensors


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
            yield model.generate(z, y), y


def classifier_extractor(network: nn.Module) -> Extractor:
    """The metrics classifier's penultimate features and its predicted class: what FCD, class consistency,
    precision/recall and diversity read."""
    def extractor(images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = network.features(images)
        return {"features": features, "predicted": network.head(features).argmax(1)}
    return extractor


def real_batches(dataset: ImageDataset, device: torch.device, batch: int = BATCH
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return sequential_batches(dataset, device, batch_size=batch)


def extract(batches, extractor: Extractor) -> dict[str, np.ndarray]:
    """Run `extractor` over (images, labels) batches; float32 arrays per feature name, plus "labels"."""
    parts: dict[str, list[torch.Tensor]] = {"labels": []}
    with torch.inference_mode():
        for images, labels in batches:  # kept on the device: one transfer per feature at the end
            for name, value in extractor(images).items():
                parts.setdefault(name, []).append(value.float() if value.is_floating_point() else value)
            parts["labels"].append(labels)
    return {name: torch.cat(chunks).cpu().numpy() for name, chunks in parts.items()}


def real_features_key(dataset: ImageDataset, extractor_key: str) -> str:
    """The cache key of `dataset`'s features by the extractor `extractor_key` names (with its weights' hash):
    the dataset's content fingerprint keeps changed images under an unchanged name from reusing old features."""
    return f"{dataset.name}-{dataset.split}-{extractor_key}-{len(dataset)}-{dataset.fingerprint}"


def cached_features(cache_dir: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Features stored under `key` (from `real_features_key`), computed and written atomically on first use. A
    damaged file (truncated, a failed zip CRC) is computed again and replaced; a cache that cannot be written
    (read-only, full) costs a warning, not the features."""
    path = feature_cache_path(cache_dir, key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass
    features = compute()
    write_to_cache(path, lambda f: np.savez(f, **features), "the features of real images")
    return features


def feature_cache_path(cache_dir: Path, key: str) -> Path:
    """The file of `key`: a readable start of the key and its hash, so any key makes a legal file name."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:64]
    return Path(cache_dir) / "features" / f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"
