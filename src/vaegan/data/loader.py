"""Seeded, resumable, shardable batches, normalised to [-1, 1] on the fly from the uint8 images."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from vaegan.data.augment import augment, draw_augmentation
from vaegan.data.dataset import ImageDataset
from vaegan.seeding import derive_seed
from vaegan.errors import VaeganError


EVAL_BATCH = 500  # images per batch when a split is read in order, for measurement and figures
# uint8 pixel value -> u / 127.5 - 1, computed once on the CPU. Batches look their values up in this table
# rather than dividing on the device: CUDA divides by a scalar as a multiplication by its reciprocal, which
# differs from the CPU's division in the last bit, and the same seed must give the same batches everywhere.
PIXEL_VALUES = torch.arange(256, dtype=torch.float32).div_(127.5).sub_(1.0)


class BatchLoader:
    """Seeded, resumable, shardable batches from an ImageDataset, normalised to [-1,1] on the fly.

    Every random draw is a pure function of (seed, epoch) for the order and (seed, epoch, batch, rank) for the
    augmentation, so a run resumed at (epoch, batch) sees bit-identical batches with no generator state saved.
    The uint8 split moves to `device` once; each epoch's order and augmentation choices are drawn on the CPU
    and moved there in one copy each, so a batch is gathered, normalised and augmented on the device without
    a transfer per batch, and the same seed gives the same batches on every device.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, *, shuffle: bool = True, hflip: bool = False,
                 crop_padding: int = 0, seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True,
                 device: str | torch.device = "cpu", channels_last: bool = False):
        if batch_size < 1:
            raise VaeganError(f"batch size must be at least 1, got {batch_size}")
        if crop_padding < 0:
            raise VaeganError(f"crop padding must be >= 0, got {crop_padding}")
        if not 0 <= rank < world_size:
            raise VaeganError(f"rank {rank} is outside [0, {world_size}) for world size {world_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.hflip = hflip
        self.crop_padding = crop_padding
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.channels_last = channels_last
        # Drop the tail of the epoch so every rank gets the same number of images.
        self.per_rank = len(dataset) // world_size
        full, rest = divmod(self.per_rank, batch_size)
        self.num_batches = full if drop_last or rest == 0 else full + 1
        if self.num_batches == 0:
            raise VaeganError(f"{dataset.name} {dataset.split} has {len(dataset)} images, too few for one batch of "
                              f"{batch_size} on each of {world_size} rank(s)")
        self._on_device: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self.num_batches

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float32 [B,3,32,32] in [-1,1], y int64 [B]) on the device for batches start..len-1 of `epoch`."""
        if not 0 <= start <= self.num_batches:
            raise VaeganError(f"cannot start epoch {epoch} at batch {start}: it has {self.num_batches} batches")
        return self._batches(epoch, start)

    def _rank_indices(self, epoch: int) -> torch.Tensor:
        """Dataset indices this rank visits in `epoch`, in order: its rank::world_size slice of the permutation."""
        total = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(total, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
        else:
            order = torch.arange(total)
        return order[: self.per_rank * self.world_size][self.rank :: self.world_size]

    def _split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The uint8 images, labels and PIXEL_VALUES on the device, copied there on first use (a no-op on the
        CPU)."""
        if self._on_device is None:
            self._on_device = (self.dataset.images.to(self.device), self.dataset.labels.to(self.device),
                               PIXEL_VALUES.to(self.device))
        return self._on_device

    def _epoch_draws(self, epoch: int, start: int, sizes: list[int]) -> dict[str, torch.Tensor]:
        """The augmentation choices of batches start.. of `epoch`, concatenated and moved to the device at once."""
        if not (self.hflip or self.crop_padding):
            return {}
        per_batch = [draw_augmentation(size, self.crop_padding, self.hflip, torch.Generator().manual_seed(
            derive_seed(self.seed, epoch, batch, self.rank))) for batch, size in enumerate(sizes, start)]
        return {key: torch.cat([draws[key] for draws in per_batch]).to(self.device) for key in per_batch[0]}

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels, pixel_values = self._split()
        indices = self._rank_indices(epoch)
        bounds = [(b * self.batch_size, min((b + 1) * self.batch_size, len(indices)))
                  for b in range(start, self.num_batches)]
        draws = self._epoch_draws(epoch, start, [high - low for low, high in bounds])
        indices = indices.to(self.device)
        offset = bounds[0][0] if bounds else 0
        for low, high in bounds:
            chosen = indices[low:high]
            x = pixel_values[images.index_select(0, chosen).long()]
            x = augment(x, self.crop_padding, {k: v[low - offset:high - offset] for k, v in draws.items()})
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels.index_select(0, chosen)


def sequential_batches(dataset: ImageDataset, device: str | torch.device, batch_size: int = EVAL_BATCH,
                       channels_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every image of `dataset` once, in order, unaugmented: (x, y) batches on `device`, for measurement (none
    for an empty dataset, such as a rank's share of fewer images than ranks)."""
    if len(dataset) == 0:
        return iter(())
    return BatchLoader(dataset, batch_size, shuffle=False, drop_last=False, device=device,
                       channels_last=channels_last).epoch_batches(0)
