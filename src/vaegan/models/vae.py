"""The reference convolutional VAE of the CIFAR-10 beta-VAE experiment."""

from __future__ import annotations

import torch
from torch import nn

REFERENCE_CHANNELS = 128
FEATURE_SIDE = 4


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Encoder(nn.Module):
    """x in [-1,1]^{3x32x32} -> (mu, logvar), three 4x4 stride-2 convs then two linear heads.

    `channels` is the width of the first conv (128 in the reference: 128/256/512); smaller widths give the
    same architecture at a fraction of the cost, for tests and quick try-outs.
    """

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 channels: int = REFERENCE_CHANNELS):
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, c), (c, 2 * c), (2 * c, 4 * c)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), _norm(c_out, batchnorm), nn.ReLU(inplace=True),
                       _dropout(dropout)]
        self.features = nn.Sequential(*layers)
        feature_dim = 4 * c * FEATURE_SIDE**2
        self.mu = nn.Linear(feature_dim, latent_dim)
        self.logvar = nn.Linear(feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z -> image in [-1,1]: a linear map to 512x4x4, three upsampling ConvTranspose layers, 3x3 conv + Tanh.

    With `channels` c the widths are 4c -> 2c -> c -> c/2 (512/256/128/64 for the reference c = 128).
    """

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 channels: int = REFERENCE_CHANNELS):
        super().__init__()
        c = channels
        self.feature_shape = (4 * c, FEATURE_SIDE, FEATURE_SIDE)
        self.project = nn.Linear(latent_dim, 4 * c * FEATURE_SIDE**2)
        layers: list[nn.Module] = []
        for c_in, c_out in ((4 * c, 2 * c), (2 * c, c), (c, c // 2)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(c_out, batchnorm), nn.ReLU(inplace=True),
                       _dropout(dropout)]
        layers += [nn.ConvTranspose2d(c // 2, 3, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, *self.feature_shape))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise_scale: float = 1.0) -> torch.Tensor:
    """z = mu + noise_scale * eps * sigma; noise_scale < 1 shrinks the sampling noise (0.3 in the reference)."""
    eps = torch.randn_like(mu)
    return mu + noise_scale * eps * torch.exp(0.5 * logvar)


class VAE(nn.Module):
    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 noise_scale: float = 1.0, channels: int = REFERENCE_CHANNELS):
        super().__init__()
        self.latent_dim = latent_dim
        self.noise_scale = noise_scale
        self.encoder = Encoder(latent_dim, batchnorm, dropout, channels)
        self.decoder = Decoder(latent_dim, batchnorm, dropout, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, mu, logvar); sampling noise is used in training mode only."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar, self.noise_scale) if self.training else mu
        return self.decoder(z), mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decoder(z)
