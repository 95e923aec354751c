"""The in-memory form every dataset takes, so the loader and trainer never care where images came from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class ImageDataset:
    """One split held in memory as uint8 pixels; normalisation happens per batch in the loader."""

    name: str
    split: str
    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]
    class_names: list[str]
    coarse_labels: torch.Tensor | None = None  # CIFAR-100 only: the 20 superclasses
    coarse_class_names: list[str] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def head(self, n: int) -> ImageDataset:
        """The first `n` images (all of them if fewer): a fixed, cheap subset for figures and quick evals."""
        return self._slice(0, n)

    def shard(self, rank: int, world_size: int) -> ImageDataset:
        """Rank `rank`'s contiguous share of `world_size` near-equal shares; together they hold every image once
        (no padding, unlike DistributedSampler, so sums over the shards are sums over the split)."""
        n = len(self)
        return self._slice(n * rank // world_size, n * (rank + 1) // world_size)

    def _slice(self, start: int, stop: int) -> ImageDataset:
        coarse = self.coarse_labels[start:stop] if self.coarse_labels is not None else None
        return dataclasses.replace(self, images=self.images[start:stop], labels=self.labels[start:stop],
                                   coarse_labels=coarse)
