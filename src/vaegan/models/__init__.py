"""Model definitions; `build_model` turns a ModelConfig into a module."""

from vaegan.models.vae import VAE, Decoder, Encoder, reparameterize
from vaegan.models.factory import build_model

__all__ = ["VAE", "Encoder", "Decoder", "reparameterize", "build_model"]
