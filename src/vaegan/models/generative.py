"""One container for every model family: encoder E (optional), decoder/generator G, discriminator D (optional).

vae = E + G, vaegan = E + G + D, gan = G + D. The trainer, evaluation and figures talk to this interface
only, so they work the same for all three and for both architectures.
"""

from __future__ import annotations

import torch
from torch import nn


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
                 noise_scale: float = 1.0, noise=standard_normal):
        """`noise(shape, like)` draws the training noise (reparameterisation and prior samples)."""
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.noise_scale = noise_scale
        self.noise = noise

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

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """E and G: what the generator optimiser updates."""
        modules = [m for m in (self.encoder, self.decoder) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, mu, logvar); sampling noise is used in training mode only."""
        if self.encoder is None:
            raise ValueError("this model has no encoder: it cannot reconstruct")
        y = self.labels(y)
        mu, logvar = self.encoder(x, y)
        z = reparameterize(mu, logvar, self.noise_scale, self.noise) if self.training else mu
        return self.decoder(z, y), mu, logvar

    def prior_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        weight = next(self.decoder.parameters())
        if generator is None:
            return self.noise((n, self.latent_dim), weight)
        return torch.randn(n, self.latent_dim, generator=generator, device=weight.device)

    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """n images G(z, y) with z ~ N(0, I); y ([n] labels) is required for a conditional model."""
        return self.decoder(self.prior_z(n, generator), self.labels(y))

    def with_decoder(self, decoder: nn.Module) -> GenerativeModel:
        """The same model with another generator (the EMA copy), sharing E and D."""
        return GenerativeModel(decoder, self.encoder, self.discriminator, latent_dim=self.latent_dim,
                               num_classes=self.num_classes, noise_scale=self.noise_scale, noise=self.noise)
