"""Training objectives."""

from vaegan.objectives.vae_loss import VAELoss, kl_divergence, vae_loss

__all__ = ["VAELoss", "kl_divergence", "vae_loss"]
