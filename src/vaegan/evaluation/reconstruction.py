"""Test-set reconstruction quality of a VAE, from the posterior mean (deterministic, so runs compare)."""

from __future__ import annotations

import torch
from torch import nn

from vaegan.models import evaluation_mode
from vaegan.objectives import vae_loss


def evaluate_reconstruction(model: nn.Module, batches, beta: float, reduction: str = "sum") -> dict[str, float]:
    """Mean per-pixel MSE in [-1,1] (and in [0,1]), mean per-image PSNR (dB, [0,1] scale), recon and KL (in the
    training `reduction`), loss = recon + beta*KL.

    `batches` yields (x, y) on the model's device (y is used by conditional models); the model runs under
    `evaluation_mode`.
    """
    totals = {"recon": 0.0, "kl": 0.0, "mse_per_pixel": 0.0, "psnr": 0.0}
    count = 0
    with evaluation_mode(model):
        for x, y in batches:
            x_hat, mu, logvar = model(x, y)
            out = vae_loss(x_hat, x, mu, logvar, beta, reduction)
            n = x.shape[0]
            totals["recon"] += out.recon.item() * n
            totals["kl"] += out.kl.item() * n
            totals["mse_per_pixel"] += out.mse_per_pixel.item() * n
            per_image = (x_hat - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
            totals["psnr"] += (10 * torch.log10(4.0 / per_image)).sum().item()  # peak 1 in [0, 1] = 2 in [-1, 1]
            count += n
    means = {k: v / count for k, v in totals.items()}
    means["mse_per_pixel_01"] = means["mse_per_pixel"] / 4  # the same error on the [0, 1] scale
    means["loss"] = means["recon"] + beta * means["kl"]
    means["images"] = count
    return means
