"""Batch augmentations on normalised [-1, 1] images, as whole-batch tensor ops (no per-image Python loop).

Random draws come from the given generator on its own device and are then moved to the batch's device, so
the same generator state gives the same augmentation on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLACK = -1.0  # a black pixel (uint8 0) after x / 127.5 - 1


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of x [B,C,H,W] left-right with probability 0.5."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by `padding` on each side, then cut a random HxW window per image.

    The padding is black (-1), not 0: the reference, torchvision's RandomCrop(32, padding=4) applied to a PIL
    image before ToTensor/Normalize, pads with black pixels, which become -1 after normalisation.
    """
    top, left = torch.randint(0, 2 * padding + 1, (2, x.shape[0]), generator=generator, device=generator.device)
    return crop(x, padding, top.to(x.device), left.to(x.device))


def crop(x: torch.Tensor, padding: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Black-pad x [B,C,H,W] by `padding`, then cut the HxW window at (top[b], left[b]) of each padded image."""
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), value=BLACK)
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # a view [B, C, 2p+1, 2p+1, H, W]
    return windows[torch.arange(batch, device=x.device), :, top, left]
