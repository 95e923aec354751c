"""The reference convolutional VAE of the CIFAR-10 beta-VAE experiment."""

from __future__ import annotations

import torch
from torch import nn

FEATURE_SHAPE = (512, 4, 4)
FEATURE_DIM = 512 * 4 * 4


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Encoder(nn.Module):
    """x in [-1,1]^{3x32x32} -> (mu, logvar), three 4x4 stride-2 convs then two linear heads."""

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 128), (128, 256), (256, 512)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), _norm(c_out, batchnorm), nn.ReLU(inplace=True),
                       _dropout(dropout)]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(FEATURE_DIM, latent_dim)
        self.logvar = nn.Linear(FEATURE_DIM, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z -> image in [-1,1]: a linear map to 512x4x4, three upsampling ConvTranspose layers, 3x3 conv + Tanh."""

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.project = nn.Linear(latent_dim, FEATURE_DIM)
        layers: list[nn.Module] = []
        for c_in, c_out in ((512, 256), (256, 128), (128, 64)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(c_out, batchnorm), nn.ReLU(inplace=True),
                       _dropout(dropout)]
        layers += [nn.ConvTranspose2d(64, 3, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, *FEATURE_SHAPE))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise_scale: float = 1.0) -> torch.Tensor:
    """z = mu + noise_scale * eps * sigma; noise_scale < 1 shrinks the sampling noise (0.3 in the reference)."""
    eps = torch.randn_like(mu)
    return mu + noise_scale * eps * torch.exp(0.5 * logvar)


class VAE(nn.Module):
    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 noise_scale: float = 1.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.noise_scale = noise_scale
        self.encoder = Encoder(latent_dim, batchnorm, dropout)
        self.decoder = Decoder(latent_dim, batchnorm, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, mu, logvar); sampling noise is used in training mode only."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar, self.noise_scale) if self.training else mu
        return self.decoder(z), mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decoder(z)
