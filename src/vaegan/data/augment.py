"""Batch augmentations on normalised [-1, 1] images, as whole-batch tensor ops (no per-image Python loop).

The random choices are drawn first (`draw_augmentation`, on the CPU generator of the batch's seed) and
applied after (`augment`, on the batch's device), so the loader can draw a whole epoch's choices at once and
move them to the device in one copy, while every batch sees the same images on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLACK = -1.0  # a black pixel (uint8 0) after x / 127.5 - 1


def draw_augmentation(n: int, padding: int, hflip: bool, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The random choices for a batch of n images: crop offsets `top`, `left` (when padding > 0), then `flip`
    flags (when hflip), in that order from `generator`."""
    draws = {}
    if padding:
        draws["top"], draws["left"] = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    if hflip:
        draws["flip"] = torch.rand(n, generator=generator) < 0.5
    return draws


def augment(x: torch.Tensor, padding: int, draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply drawn choices (on x's device) to x [B,C,H,W]: the random crop, then the left-right mirror."""
    if "top" in draws:
        x = crop(x, padding, draws["top"], draws["left"])
    if "flip" in draws:
        x = torch.where(draws["flip"][:, None, None, None], x.flip(-1), x)
    return x


def crop(x: torch.Tensor, padding: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Black-pad x [B,C,H,W] by `padding`, then cut the HxW window at (top[b], left[b]) of each padded image.

    The padding is black (-1), not 0: the reference, torchvision's RandomCrop(32, padding=4) applied to a PIL
    image before ToTensor/Normalize, pads with black pixels, which become -1 after normalisation.
    """
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), value=BLACK)
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # a view [B, C, 2p+1, 2p+1, H, W]
    return windows[torch.arange(batch, device=x.device), :, top, left]
