"""One container for every model family: encoder E (optional), decoder/generator G, discriminator D (optional).

vae = E + G, vaegan = E + G + D, gan = G + D. The trainer, evaluation and figures talk to this interface
only, so they work the same for all three and for both architectures.

The prior is N(0, I), or with `class_prior` N(m_y, I) with a learned mean m_y per class. Prior noise z ~ N(0, I)
is always what callers draw; `generate` moves it to the label's mean, and the KL term measures the posterior
mean from it (`posterior_offset`). G decodes two kinds of code: prior noise (`generate`) and encodings
(`decode`); with a second set of BatchNorm statistics (models/reconstruction_statistics.py) each kind has its own.
"""

from __future__ import annotations

import torch
from torch import nn

from vaegan.models.reconstruction_statistics import reconstruction_statistics


def standard_normal(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise of `like`'s dtype and device from the global generator: a model's training noise (the
    fused models of several runs draw each run's rows from that run's own stream instead)."""
    return torch.randn(shape, dtype=like.dtype, device=like.device)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise_scale: float = 1.0, noise=standard_normal
                   ) -> torch.Tensor:
    """z = mu + noise_scale * eps * sigma; noise_scale < 1 shrinks the sampling noise (0.3 in the reference)."""
    eps = noise(mu.shape, mu)
    return mu + noise_scale * eps * torch.exp(0.5 * logvar)


class GenerativeModel(nn.Module):
    def __init__(self, decoder: nn.Module, encoder: nn.Module | None = None,
                 discriminator: nn.Module | None = None, *, latent_dim: int, num_classes: int = 0,
                 noise_scale: float = 1.0, noise=standard_normal, class_prior: bool | nn.Embedding = False):
        """`noise(shape, like)` draws the training noise (reparameterisation and prior samples). `class_prior`:
        a learned prior mean per class (True builds it, starting at 0; an Embedding shares that one)."""
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.noise_scale = noise_scale
        self.noise = noise
        if class_prior is True:
            if not num_classes:
                raise ValueError("a class prior needs a conditional model")
            class_prior = nn.Embedding(num_classes, latent_dim)
            nn.init.zeros_(class_prior.weight)
        self.prior_mean = class_prior or None

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The labels the networks take: y for a conditional model, None for an unconditional one."""
        return y if self.conditional else None

    def embed_labels(self, y: torch.Tensor) -> torch.Tensor:
        """G's label embedding of integer labels [n] -> [n, embed_dim]: the space a label path moves through
        (the generator also takes such embedded labels in place of integers)."""
        if not self.conditional:
            raise ValueError("an unconditional model has no label embedding")
        return self.decoder.label.embedding(y)

    def posterior_offset(self, mu: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """mu measured from the prior mean of its label: what the KL term against N(0, I) takes."""
        return mu if self.prior_mean is None else mu - self.prior_mean(y)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G's images for prior noise z ~ N(0, I) [n, latent_dim] and labels y [n] (conditional models)."""
        y = self.labels(y)
        return self.decoder(z if self.prior_mean is None else z + self.prior_mean(y), y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G's images for encodings z (posterior draws or means, or paths between them) [n, latent_dim] and
        labels y (integers or G's label embeddings), with G's reconstruction statistics where it keeps them."""
        with reconstruction_statistics(self.decoder):
            return self.decoder(z, y)

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """E, G and the class prior: what the generator optimiser updates."""
        modules = [m for m in (self.encoder, self.decoder, self.prior_mean) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, mu, logvar); sampling noise is used in training mode only."""
        if self.encoder is None:
            raise ValueError("this model has no encoder: it cannot reconstruct")
        y = self.labels(y)
        mu, logvar = self.encoder(x, y)
        z = reparameterize(mu, logvar, self.noise_scale, self.noise) if self.training else mu
        return self.decode(z, y), mu, logvar

    def prior_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        weight = next(self.decoder.parameters())
        if generator is None:
            return self.noise((n, self.latent_dim), weight)
        return torch.randn(n, self.latent_dim, generator=generator, device=weight.device)

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """n images G(z, y) with z ~ N(0, I); y ([n] labels) is required for a conditional model."""
        return self.generate(self.prior_z(n, generator), y)

    def with_decoder(self, decoder: nn.Module) -> GenerativeModel:
        """The same model with another generator (the EMA copy), sharing E and D."""
        return GenerativeModel(decoder, self.encoder, self.discriminator, latent_dim=self.latent_dim,
                               num_classes=self.num_classes, noise_scale=self.noise_scale, noise=self.noise,
                               class_prior=self.prior_mean or False)
