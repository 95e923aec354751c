"""SNGAN-style residual networks for 32x32 images (Miyato et al. 2018, appendix B.4), selectable by
`model.arch=resnet`. Same interfaces as the reference conv encoder, decoder and discriminator features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vaegan.models.conditioning import LabelConcat, LabelledSequential, TakesLabel, apply, norm_layer
from vaegan.models.discriminator import FeatureStack
from vaegan.models.vae import _dropout  # the conv E/G's layer for model.dropout


class UpBlock(TakesLabel):
    """(BN)-ReLU-upsample-conv3x3-(BN)-ReLU-conv3x3, plus an upsampled 1x1 shortcut; dropout on the sum. The BN
    layers are conditional with `class_embed` > 0 (the label embedding's size)."""

    def __init__(self, c_in: int, c_out: int, batchnorm: bool = True, dropout: float = 0.0, class_embed: int = 0):
        super().__init__()
        self.bn1, self.bn2 = norm_layer(c_in, batchnorm, class_embed), norm_layer(c_out, batchnorm, class_embed)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.dropout = _dropout(dropout)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(apply(self.bn1, x, label)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(apply(self.bn2, self.conv1(h), label)))
        return self.dropout(h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest")))


class DownBlock(nn.Module):
    """(norm)-ReLU-conv3x3-(norm)-ReLU-conv3x3-avgpool, plus a 1x1 avgpooled shortcut.

    `first` is SNGAN's optimized first block (no activation before the first conv). Discriminators use
    spectral norm and no BatchNorm; encoders use BatchNorm without spectral norm.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool = True, first: bool = False,
                 spectral: bool = False, batchnorm: bool = False):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        self.conv1, self.conv2 = wrap(nn.Conv2d(c_in, c_out, 3, 1, 1)), wrap(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = wrap(nn.Conv2d(c_in, c_out, 1)) if (c_in != c_out or downsample) else nn.Identity()
        self.norm1 = norm_layer(c_in, batchnorm and not first)
        self.norm2 = norm_layer(c_out, batchnorm)
        self.downsample, self.first = downsample, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        if self.first:  # pool before the 1x1 conv: the same result, cheaper
            shortcut = self.shortcut(F.avg_pool2d(x, 2))
        else:
            shortcut = self.shortcut(x)
            if self.downsample:
                shortcut = F.avg_pool2d(shortcut, 2)
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + shortcut


class ResNetEncoder(nn.Module):
    """32 -> 16 -> 8 -> 4 with residual down blocks, then linear mu / logvar heads (label embedding appended)."""

    def __init__(self, latent_dim: int, channels: int, batchnorm: bool = True, dropout: float = 0.0,
                 num_classes: int = 0, embed_dim: int = 32):
        super().__init__()
        c = channels
        self.blocks = nn.Sequential(DownBlock(3, c, first=True, batchnorm=batchnorm),
                                    DownBlock(c, c, batchnorm=batchnorm), DownBlock(c, c, batchnorm=batchnorm),
                                    nn.ReLU(), _dropout(dropout))
        self.label = LabelConcat(num_classes, embed_dim)
        self.mu = nn.Linear(c * 16 + self.label.out_extra, latent_dim)
        self.logvar = nn.Linear(c * 16 + self.label.out_extra, latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.label(self.blocks(x).flatten(1), y)
        return self.mu(h), self.logvar(h)


class ResNetDecoder(nn.Module):
    """Linear to c x 4 x 4, three residual up blocks to 32x32, (BN)-ReLU-conv3x3-Tanh (label appended to z).
    BatchNorm and dropout as `model.batchnorm` and `model.dropout` ask, like the conv decoder's."""

    def __init__(self, latent_dim: int, channels: int, batchnorm: bool = True, dropout: float = 0.0,
                 num_classes: int = 0, embed_dim: int = 32, class_norm: bool = False):
        super().__init__()
        c = channels
        self.channels = c
        self.label = LabelConcat(num_classes, embed_dim)
        self.project = nn.Linear(latent_dim + self.label.out_extra, c * 16)
        class_embed = self.label.out_extra if class_norm else 0
        self.body = LabelledSequential(*(UpBlock(c, c, batchnorm, dropout, class_embed) for _ in range(3)),
                                       norm_layer(c, batchnorm, class_embed), nn.ReLU(), nn.Conv2d(c, 3, 3, 1, 1),
                                       nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        label = self.label.vector(y)
        return self.body(self.project(self.label(z, label)).view(-1, self.channels, 4, 4), label)


class ResNetDiscriminatorFeatures(FeatureStack):
    """phi of SNGAN's CIFAR discriminator: optimized block, two down blocks, two plain blocks, ReLU."""

    def __init__(self, channels: int):
        c = channels
        super().__init__([DownBlock(3, c, first=True, spectral=True), DownBlock(c, c, spectral=True),
                          DownBlock(c, c, downsample=False, spectral=True),
                          nn.Sequential(DownBlock(c, c, downsample=False, spectral=True), nn.ReLU())],
                         out_channels=c)
