"""Test-set reconstruction quality of a VAE, from the posterior mean (deterministic, so runs compare)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vaegan.models import evaluation_mode
from vaegan.objectives import vae_loss


def evaluate_reconstruction(model: nn.Module, batches, beta: float, reduction: str = "sum",
                            combine_sums: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """Mean per-pixel MSE in [-1,1] (and in [0,1]), mean per-image PSNR (dB, [0,1] scale), recon and KL (in the
    training `reduction`), loss = recon + beta*KL.

    `batches` yields (x, y) on the model's device (y is used by conditional models); the model runs under
    `evaluation_mode`. `combine_sums`, when given, maps this process's float64 sums (recon, KL, MSE and PSNR
    summed over images, then the image count) to the sums the means are taken from: ranks that each measured a
    share of a split add their sums this way.
    """
    names = ("recon", "kl", "mse_per_pixel", "psnr")
    sums = None  # stays on the device: one transfer at the end, not one per batch
    with evaluation_mode(model):
        for x, y in batches:
            x_hat, mu, logvar = model(x, y)
            out = vae_loss(x_hat, x, model.posterior_offset(mu, model.labels(y)), logvar, beta, reduction)
            per_image = (x_hat - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
            n = x.shape[0]
            psnr = (10 * torch.log10(4.0 / per_image)).double().sum()  # peak 1 in [0, 1] = 2 in [-1, 1]
            batch = torch.stack([*(v.double() * n for v in (out.recon, out.kl, out.mse_per_pixel)), psnr,
                                 psnr.new_tensor(n)])
            sums = batch if sums is None else sums + batch
    if sums is None:
        sums = torch.zeros(len(names) + 1, dtype=torch.float64, device=next(model.parameters()).device)
    if combine_sums is not None:
        sums = combine_sums(sums)
    *totals, count = sums.tolist()
    if count == 0:
        raise ValueError("no images to evaluate")
    means = {name: total / count for name, total in zip(names, totals)}
    means["mse_per_pixel_01"] = means["mse_per_pixel"] / 4  # the same error on the [0, 1] scale
    means["loss"] = means["recon"] + beta * means["kl"]
    means["images"] = int(count)
    return means
