"""Model definitions; `build_model` turns a ModelConfig into a GenerativeModel."""

from vaegan.models.evaluation_mode import evaluation_mode
from vaegan.models.factory import build_model
from vaegan.models.generative import GenerativeModel, reparameterize
from vaegan.models.vae import Decoder, Encoder

__all__ = ["GenerativeModel", "Encoder", "Decoder", "reparameterize", "build_model", "evaluation_mode"]
