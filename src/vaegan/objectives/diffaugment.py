"""DiffAugment (Zhao et al. 2020): differentiable augmentations of every image the discriminator sees.

Augmenting only the real images would teach G to draw the augmentations; augmenting reals and fakes alike, in
D's update and in G's (the gradient flows through the augmentation), keeps D from memorising the training
images without leaking the augmentation into G's output. The three transforms follow the paper's code on
[-1, 1] images: colour (brightness, saturation, contrast), translation by up to 1/8 of the side (black fill),
cutout of a square half the side (filled with 0). Each image draws its own parameters from the global generator.
"""

from __future__ import annotations

import torch

from vaegan.data.augment import crop

TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5


def _uniform(x: torch.Tensor) -> torch.Tensor:
    """One U(0, 1) value per image, shaped to broadcast over [B, C, H, W]."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + (_uniform(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def translation(x: torch.Tensor) -> torch.Tensor:
    shift = int(x.shape[-1] * TRANSLATION_RATIO + 0.5)
    top, left = torch.randint(0, 2 * shift + 1, (2, x.shape[0]), device=x.device)
    return crop(x, shift, top, left)


def cutout(x: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = x.shape
    size_h, size_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, height + (1 - size_h % 2), (batch, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, width + (1 - size_w % 2), (batch, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(height, device=x.device).view(1, -1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """x [B, C, H, W] through each transform of `policy` ("off" or comma-separated names of TRANSFORMS)."""
    if policy == "off":
        return x
    for name in policy.split(","):
        if name not in TRANSFORMS:
            raise ValueError(f"unknown DiffAugment transform {name!r}; choose from {', '.join(TRANSFORMS)}")
        x = TRANSFORMS[name](x)
    return x
