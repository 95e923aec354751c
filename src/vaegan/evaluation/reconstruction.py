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
    names = ("recon", "kl", "mse_per_pixel", "psnr")
    per_batch, sizes = [], []  # stay on the device: one transfer at the end, not one per batch
    with evaluation_mode(model):
        for x, y in batches:
            x_hat, mu, logvar = model(x, y)
            out = vae_loss(x_hat, x, mu, logvar, beta, reduction)
            per_image = (x_hat - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
            psnr = (10 * torch.log10(4.0 / per_image)).sum()  # peak 1 in [0, 1] = 2 in [-1, 1]
            per_batch.append(torch.stack([out.recon, out.kl, out.mse_per_pixel, psnr]).float())
            sizes.append(x.shape[0])
    totals = dict.fromkeys(names, 0.0)
    for values, n in zip(torch.stack(per_batch).tolist(), sizes):
        for name, value in zip(names, values):
            totals[name] += value if name == "psnr" else value * n  # psnr is already a sum over the batch
    count = sum(sizes)
    means = {k: v / count for k, v in totals.items()}
    means["mse_per_pixel_01"] = means["mse_per_pixel"] / 4  # the same error on the [0, 1] scale
    means["loss"] = means["recon"] + beta * means["kl"]
    means["images"] = count
    return means
