"""Build the model a config asks for."""

from __future__ import annotations

from vaegan.models.discriminator import ConvDiscriminatorFeatures, ProjectionDiscriminator
from vaegan.models.generative import GenerativeModel
from vaegan.models.resnet import ResNetDecoder, ResNetDiscriminatorFeatures, ResNetEncoder
from vaegan.models.vae import Decoder, Encoder


def build_model(model_cfg, num_classes: int = 0) -> GenerativeModel:
    """E/G/D for `model_cfg.name` and `model_cfg.arch`; `num_classes` (from the dataset) is used only when
    `model_cfg.conditional` is on."""
    m = model_cfg
    classes = num_classes if m.conditional else 0
    if m.arch == "conv":
        decoder = Decoder(m.latent_dim, m.batchnorm, m.dropout, m.channels, classes, m.embed_dim)
        encoder = Encoder(m.latent_dim, m.batchnorm, m.dropout, m.channels, classes, m.embed_dim)
        features = ConvDiscriminatorFeatures(m.d_channels)
    else:
        decoder = ResNetDecoder(m.latent_dim, m.channels, classes, m.embed_dim)
        encoder = ResNetEncoder(m.latent_dim, m.channels, m.batchnorm, m.dropout, classes, m.embed_dim)
        features = ResNetDiscriminatorFeatures(m.d_channels)
    return GenerativeModel(decoder, encoder if m.name in ("vae", "vaegan") else None,
                           ProjectionDiscriminator(features, classes) if m.name in ("vaegan", "gan") else None,
                           latent_dim=m.latent_dim, num_classes=classes, noise_scale=m.noise_scale)
