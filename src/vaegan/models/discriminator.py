"""Projection discriminator D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018).

phi is a spectrally normalised conv stack followed by global sum pooling; the class enters only through the
inner product with a learned class embedding, which is what makes the projection form work better than
concatenating the label. Every layer carries spectral norm (Miyato et al. 2018) to keep D 1-Lipschitz-ish.
With `classifier`, a linear head on the same pooled features also predicts the class (AC-GAN's auxiliary
classifier, Odena et al. 2017): a supervised signal that carries the label to G far sooner than the projection
term alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding))


class FeatureStack(nn.Module):
    """phi as a sequence of blocks that also hands back every block's activation (for feature matching)."""

    def __init__(self, blocks: list[nn.Module], out_channels: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
        return activations


class ConvDiscriminatorFeatures(FeatureStack):
    """phi for the reference architecture: three 4x4 stride-2 convs mirroring the encoder, LeakyReLU 0.1."""

    def __init__(self, channels: int):
        c = channels
        super().__init__([nn.Sequential(_sn_conv(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.1))
                          for c_in, c_out in ((3, c), (c, 2 * c), (2 * c, 4 * c))], out_channels=4 * c)


class ProjectionDiscriminator(nn.Module):
    def __init__(self, features: nn.Module, num_classes: int = 0, classifier: bool = False):
        """`features` maps images to a list of activations, the last [B, C, H, W]; num_classes 0 = unconditional;
        `classifier`: the class head (conditional only)."""
        super().__init__()
        if classifier and not num_classes:
            raise ValueError("a class head needs classes")
        self.features = features
        self.psi = spectral_norm(nn.Linear(features.out_channels, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, features.out_channels)) if num_classes else None
        self.classifier = spectral_norm(nn.Linear(features.out_channels, num_classes)) if classifier else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                return_features: bool = False):
        """Logits [B]; with `return_features` also phi's intermediate activations (for feature matching)."""
        activations = self.features(x)
        h = self.pooled(activations[-1])
        logits = self.psi(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs labels")
            logits = logits + (self.embed(y) * h).sum(dim=1)
        return (logits, activations) if return_features else logits

    @staticmethod
    def pooled(last_activation: torch.Tensor) -> torch.Tensor:
        """phi(x): the last activation [B, C, H, W] summed over positions."""
        return last_activation.sum(dim=(2, 3))

    def class_logits(self, last_activation: torch.Tensor) -> torch.Tensor:
        """The class head's logits [B, classes] from the last activation that `forward` returns with features."""
        if self.classifier is None:
            raise ValueError("this discriminator has no class head")
        return self.classifier(self.pooled(last_activation))
