"""Model definitions; `build_model` turns a ModelConfig into a GenerativeModel."""

from vaegan.models.generative import GenerativeModel, reparameterize
from vaegan.models.vae import VAE, Decoder, Encoder
from vaegan.models.factory import build_model

__all__ = ["GenerativeModel", "VAE", "Encoder", "Decoder", "reparameterize", "build_model"]
