"""The VAE objective.

Reduction: the reconstruction term is the squared error summed over the 3x32x32 pixels of each image and the
KL term is summed over latent dimensions; both are then averaged over the batch. That is the per-image
negative ELBO (up to the Gaussian constant), so beta keeps its usual meaning. `mse_per_pixel` divides the
reconstruction term by the pixel count so numbers compare across image sizes and against other papers.

`reduction="mean"` takes per-element means instead (recon = MSE per pixel, KL per latent dimension), as
`F.mse_loss` and a mean KL would; under it beta 0.2 and the GAN weight 0.1 of the CIFAR-100 reference weigh
terms of similar size. In per-image sums its beta equals beta * pixels / latent_dim (4.8 for 3072 and 128).
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


REDUCTIONS = ("sum", "mean")


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0, reduction: str = "sum") -> VAELoss:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
    squared = (x_hat - x).pow(2).flatten(1)
    recon = squared.sum(dim=1).mean()
    kl = kl_divergence(mu, logvar).mean()
    mse_per_pixel = recon / squared.shape[1]
    if reduction == "mean":
        recon, kl = mse_per_pixel, kl / mu.shape[1]
    return VAELoss(loss=recon + beta * kl, recon=recon, kl=kl, mse_per_pixel=mse_per_pixel)
