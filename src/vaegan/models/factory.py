"""Build the model a config asks for."""

from __future__ import annotations

from torch import nn

from vaegan.models.vae import VAE


def build_model(model_cfg) -> nn.Module:
    return VAE(latent_dim=model_cfg.latent_dim, batchnorm=model_cfg.batchnorm, dropout=model_cfg.dropout,
               noise_scale=model_cfg.noise_scale, channels=model_cfg.channels)
