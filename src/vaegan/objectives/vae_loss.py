"""The VAE objective.

Reduction: the reconstruction term is the squared error summed over the 3x32x32 pixels of each image and the
KL term is summed over latent dimensions; both are then averaged over the batch. That is the per-image
negative ELBO (up to the Gaussian constant), so beta keeps its usual meaning. `mse_per_pixel` divides the
reconstruction term by the pixel count so numbers compare across image sizes and against other papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


@dataclass
class VAELoss:
    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    mse_per_pixel: torch.Tensor


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> VAELoss:
    squared = (x_hat - x).pow(2).flatten(1)
    recon = squared.sum(dim=1).mean()
    kl = kl_divergence(mu, logvar).mean()
    return VAELoss(loss=recon + beta * kl, recon=recon, kl=kl, mse_per_pixel=recon / squared.shape[1])
