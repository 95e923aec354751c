"""The reference convolutional encoder and decoder of the CIFAR-10 beta-VAE experiment.

The decoder is also the generator of the conditional VAE-GAN ("same decoder body as the reference VAE");
with `num_classes` > 0 both take a label (see conditioning.py). Its non-reference options: `upsample="resize"`
(nearest-neighbour upsampling + 3x3 conv in place of each 4x4 stride-2 ConvTranspose, whose overlapping
kernels draw checkerboards) and `class_norm` (conditional BatchNorm).
"""

from __future__ import annotations

import torch
from torch import nn

from vaegan.models.conditioning import LabelConcat, LabelledSequential, norm_layer

REFERENCE_CHANNELS = 128
FEATURE_SIDE = 4


UPSAMPLING = ("convtranspose", "resize")


def upsampling_conv(c_in: int, c_out: int, kind: str) -> nn.Module:
    """A layer that doubles the resolution: the reference's ConvTranspose2d(4, 2, 1), or resize + conv3x3."""
    if kind == "convtranspose":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1))
    raise ValueError(f"unknown upsampling {kind!r}; choose one of {UPSAMPLING}")


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Encoder(nn.Module):
    """x in [-1,1]^{3x32x32} -> (mu, logvar), three 4x4 stride-2 convs then two linear heads.

    `channels` is the width of the first conv (128 in the reference: 128/256/512); smaller widths give the
    same architecture at a fraction of the cost, for tests and quick try-outs.
    """

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 channels: int = REFERENCE_CHANNELS, num_classes: int = 0, embed_dim: int = 32):
        super().__init__()
        c = channels
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, c), (c, 2 * c), (2 * c, 4 * c)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), norm_layer(c_out, batchnorm), nn.ReLU(inplace=True),
                       _dropout(dropout)]
        self.features = nn.Sequential(*layers)
        self.label = LabelConcat(num_classes, embed_dim)
        feature_dim = 4 * c * FEATURE_SIDE**2 + self.label.out_extra
        self.mu = nn.Linear(feature_dim, latent_dim)
        self.logvar = nn.Linear(feature_dim, latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.label(self.features(x).flatten(1), y)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z -> image in [-1,1]: a linear map to 512x4x4, three upsampling layers, 3x3 conv + Tanh.

    With `channels` c the widths are 4c -> 2c -> c -> c/2 (512/256/128/64 for the reference c = 128).
    """

    def __init__(self, latent_dim: int = 128, batchnorm: bool = True, dropout: float = 0.0,
                 channels: int = REFERENCE_CHANNELS, num_classes: int = 0, embed_dim: int = 32,
                 upsample: str = "convtranspose", class_norm: bool = False):
        super().__init__()
        c = channels
        self.feature_shape = (4 * c, FEATURE_SIDE, FEATURE_SIDE)
        self.label = LabelConcat(num_classes, embed_dim)
        self.project = nn.Linear(latent_dim + self.label.out_extra, 4 * c * FEATURE_SIDE**2)
        class_embed = self.label.out_extra if class_norm else 0
        layers: list[nn.Module] = []
        for c_in, c_out in ((4 * c, 2 * c), (2 * c, c), (c, c // 2)):
            layers += [upsampling_conv(c_in, c_out, upsample), norm_layer(c_out, batchnorm, class_embed),
                       nn.ReLU(inplace=True), _dropout(dropout)]
        layers += [nn.ConvTranspose2d(c // 2, 3, 3, 1, 1), nn.Tanh()]
        self.body = LabelledSequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        label = self.label.vector(y)
        return self.body(self.project(self.label(z, label)).view(-1, *self.feature_shape), label)
