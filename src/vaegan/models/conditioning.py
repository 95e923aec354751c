"""How a class label enters the encoder and the generator.

A learned embedding concatenated to a vector (`LabelConcat`): the encoder appends it to the flattened conv
features before the mu/logvar heads; the generator appends it to z before the first linear layer. Conditioning
after the conv stack (rather than as extra input channels) keeps the conv bodies identical to the unconditional
reference networks, so only the two linear layers that see the embedding grow.

With `model.class_norm` the generator's BatchNorm layers are also conditional (`ClassBatchNorm2d`): the label
then scales and shifts every layer's channels instead of entering once, at the input, where G can learn to
ignore it.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelConcat(nn.Module):
    """h -> [h, embed(y)] for a conditional network; h unchanged when num_classes is 0."""

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_classes, embed_dim) if num_classes else None
        self.out_extra = embed_dim if num_classes else 0

    def vector(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The label as the network sees it: embed(y) for integer labels [n], y itself for already embedded labels
        [n, embed_dim] (a path between two classes); None for an unconditional network."""
        if self.embedding is None:
            return None
        if y is None:
            raise ValueError("a conditional network needs labels")
        return y if y.is_floating_point() else self.embedding(y)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        label = self.vector(y)
        return h if label is None else torch.cat([h, label], dim=1)


class TakesLabel(nn.Module):
    """A layer whose forward is f(x, label), label being the embedded label vector (or None)."""


def apply(layer: nn.Module, x: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    """layer(x, label) for a layer that takes the label, layer(x) for any other."""
    return layer(x, label) if isinstance(layer, TakesLabel) else layer(x)


class LabelledSequential(nn.Sequential):
    """nn.Sequential that hands the label to the layers that take one."""

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = apply(layer, x, label)
        return x


class ClassBatchNorm2d(TakesLabel):
    """BatchNorm without affine weights, then x * (1 + scale(e)) + shift(e) for the label embedding e: BigGAN's
    conditional BatchNorm over a shared embedding. Both maps start at zero, so at initialisation it is the plain
    BatchNorm of the unconditional decoder."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale, self.shift = nn.Linear(embed_dim, channels), nn.Linear(embed_dim, channels)
        for linear in (self.scale, self.shift):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        if label is None:
            raise ValueError("conditional BatchNorm needs labels")
        return self.norm(x) * (1 + self.scale(label))[:, :, None, None] + self.shift(label)[:, :, None, None]


def norm_layer(channels: int, batchnorm: bool, class_embed_dim: int = 0) -> nn.Module:
    """A network's normalisation layer: ClassBatchNorm2d when `class_embed_dim` > 0 (generators with
    `model.class_norm`), else BatchNorm2d, or none without `model.batchnorm`."""
    if class_embed_dim:
        return ClassBatchNorm2d(channels, class_embed_dim)
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
