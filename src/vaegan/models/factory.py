"""Build the model a config asks for."""

from __future__ import annotations

from torch import nn

from vaegan.models.discriminator import ConvDiscriminatorFeatures, ProjectionDiscriminator
from vaegan.models.generative import GenerativeModel
from vaegan.models.reconstruction_statistics import add_reconstruction_statistics
from vaegan.models.resnet import ResNetDecoder, ResNetDiscriminatorFeatures, ResNetEncoder
from vaegan.models.vae import Decoder, Encoder

WITH_ENCODER = ("vae", "vaegan")
WITH_DISCRIMINATOR = ("vaegan", "gan")


def _decoder(m, classes: int) -> nn.Module:
    if m.arch == "conv":
        return Decoder(m.latent_dim, m.batchnorm, m.dropout, m.channels, classes, m.embed_dim, m.upsample,
                       m.class_norm)
    return ResNetDecoder(m.latent_dim, m.channels, m.batchnorm, m.dropout, classes, m.embed_dim, m.class_norm)


def _encoder(m, classes: int) -> nn.Module:
    if m.arch == "conv":
        return Encoder(m.latent_dim, m.batchnorm, m.dropout, m.channels, classes, m.embed_dim)
    return ResNetEncoder(m.latent_dim, m.channels, m.batchnorm, m.dropout, classes, m.embed_dim)


def _discriminator(m, classes: int) -> nn.Module:
    features = ConvDiscriminatorFeatures(m.d_channels) if m.arch == "conv" else ResNetDiscriminatorFeatures(
        m.d_channels)
    return ProjectionDiscriminator(features, classes, classifier=m.d_classifier)


def build_model(model_cfg, num_classes: int = 0) -> GenerativeModel:
    """E/G/D for `model_cfg.name` and `model_cfg.arch`; `num_classes` (from the dataset) is used only when
    `model_cfg.conditional` is on."""
    m = model_cfg
    classes = num_classes if m.conditional else 0
    decoder = _decoder(m, classes)
    if m.split_bn_stats:
        add_reconstruction_statistics(decoder, own_set_of_every_pass=m.sample_bn_stats == "all")
    return GenerativeModel(decoder, _encoder(m, classes) if m.name in WITH_ENCODER else None,
                           _discriminator(m, classes) if m.name in WITH_DISCRIMINATOR else None,
                           latent_dim=m.latent_dim, num_classes=classes, noise_scale=m.noise_scale,
                           class_prior=m.prior == "class" and classes > 0)
