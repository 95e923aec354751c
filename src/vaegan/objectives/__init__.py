"""Training objectives."""

from vaegan.objectives.gan import discriminator_loss, feature_matching_loss, generator_loss
from vaegan.objectives.vae_loss import VAELoss, kl_divergence, vae_loss

__all__ = ["VAELoss", "kl_divergence", "vae_loss", "discriminator_loss", "generator_loss",
           "feature_matching_loss"]
