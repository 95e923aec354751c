"""How much fine detail images hold: the energy of their Laplacian. Blurry VAE samples and reconstructions
score far below real images; a sharper generator (VAE-GAN against VAE-only) scores closer to them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rec. 601 luma weights, and the 4-neighbour Laplacian
LUMA = torch.tensor([0.299, 0.587, 0.114])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    """[N] mean squared Laplacian of each image's luma on the [0, 1] scale (images [N, 3, H, W] in [-1, 1]),
    over the interior pixels (no padding, so borders add no false edges)."""
    luma = ((images.float() + 1) / 2 * LUMA.to(images.device)[:, None, None]).sum(1, keepdim=True)
    response = F.conv2d(luma, LAPLACIAN.to(images.device)[None, None])
    return response.square().flatten(1).mean(1)
