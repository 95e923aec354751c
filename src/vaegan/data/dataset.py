"""The in-memory form every dataset takes, so the loader and trainer never care where images came from."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

import torch

from vaegan.errors import VaeganError


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

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the split's content (pixels, labels, class names), computed once per object: caches and
        runs record it, because a name (a folder's, a file's) stays the same when the images behind it change."""
        digest = hashlib.sha256(json.dumps([list(self.images.shape), self.class_names,
                                            self.coarse_class_names]).encode())
        for values in (self.images, self.labels.long(), self.coarse_labels):
            if values is not None:
                digest.update(values.contiguous().numpy())
        return digest.hexdigest()

    def head(self, n: int) -> ImageDataset:
        """The first `n` images (all of them if fewer): a fixed, cheap subset for figures and quick evals."""
        return self._take(slice(0, n))

    def shard(self, rank: int, world_size: int) -> ImageDataset:
        """Rank `rank`'s contiguous share of `world_size` near-equal shares; together they hold every image once
        (no padding, unlike DistributedSampler, so sums over the shards are sums over the split)."""
        n = len(self)
        return self._take(slice(n * rank // world_size, n * (rank + 1) // world_size))

    def balanced_subset(self, n: int, seed: int) -> ImageDataset:
        """`n` images with as equal a count of each class as `n` allows (the first n % classes classes get one
        more), drawn without replacement by a generator seeded with `seed`, kept in dataset order."""
        classes = self.num_classes
        if not 0 < n <= len(self):
            raise VaeganError(f"a subset of {n} images of {self.name} {self.split} must hold 1 to {len(self)}")
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for label in range(classes):
            members = (self.labels == label).nonzero().flatten()
            count = n // classes + (label < n % classes)
            if len(members) < count:
                raise VaeganError(f"a class-balanced subset of {n} images of {self.name} {self.split} needs {count} "
                                  f"of class '{self.class_names[label]}', which has {len(members)}")
            chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
        return self._take(torch.cat(chosen).sort().values)

    def hold_out(self, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
        """(the rest, a held-out test split): `fraction` of each class's images, rounded, at least one where the
        class has two or more and never all of them, drawn by a generator seeded with `seed`."""
        generator = torch.Generator().manual_seed(seed)
        held = []
        for label in range(self.num_classes):
            members = (self.labels == label).nonzero().flatten()
            count = min(max(round(fraction * len(members)), 1), len(members) - 1)
            held.append(members[torch.randperm(len(members), generator=generator)[:count]])
        chosen = torch.zeros(len(self), dtype=torch.bool)
        chosen[torch.cat(held)] = True
        if not chosen.any():
            raise VaeganError(f"{self.name} has too few images to hold out a test split (data.test_fraction="
                              f"{fraction}); add images or a test split")
        rest, test = self._take(chosen.logical_not().nonzero().flatten()), self._take(chosen.nonzero().flatten())
        return rest, dataclasses.replace(test, split="test")

    def _take(self, index: slice | torch.Tensor) -> ImageDataset:
        coarse = self.coarse_labels[index] if self.coarse_labels is not None else None
        return dataclasses.replace(self, images=self.images[index], labels=self.labels[index], coarse_labels=coarse)
