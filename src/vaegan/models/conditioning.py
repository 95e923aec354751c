"""How a class label enters the encoder and the generator: a learned embedding concatenated to a vector.

The encoder appends it to the flattened conv features before the mu/logvar heads; the generator appends it
to z before the first linear layer. Conditioning after the conv stack (rather than as extra input channels)
keeps the conv bodies identical to the unconditional reference networks, so only the two linear layers that
see the embedding grow.
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

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """y: integer labels [n], or already embedded labels [n, embed_dim] (a path between two classes)."""
        if self.embedding is None:
            return h
        if y is None:
            raise ValueError("a conditional network needs labels")
        return torch.cat([h, y if y.is_floating_point() else self.embedding(y)], dim=1)
