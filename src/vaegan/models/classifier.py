"""The metrics classifier's network (trained by evaluation/classifier.py): a CIFAR speed-run net whose
penultimate features serve FCD, class consistency and precision/recall, and whose layer activations serve the
perceptual loss."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


class Classifier(nn.Module):
    """Stem conv (c) at 32x32, then three groups (c, 4c, 4c channels), each conv -> max pool 2 -> BN -> GELU ->
    conv -> BN -> GELU (32 -> 16 -> 8 -> 4), global max pool -> features [4c] -> logits. Inputs in [-1, 1]."""

    def __init__(self, num_classes: int, channels: int = 64):
        super().__init__()
        c = channels
        widths = [(c, c), (c, 4 * c), (4 * c, 4 * c)]
        self.stem = nn.Sequential(*_conv_bn(3, c))
        self.groups = nn.Sequential(*(nn.Sequential(nn.Conv2d(w_in, w_out, 3, padding=1, bias=False),
                                                    nn.MaxPool2d(2), nn.BatchNorm2d(w_out), nn.GELU(),
                                                    *_conv_bn(w_out, w_out)) for w_in, w_out in widths))
        self.head = nn.Linear(4 * c, num_classes, bias=False)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations of the stem and of each group: [N, c, 32, 32], [N, c, 16, 16], [N, 4c, 8, 8],
        [N, 4c, 4, 4]."""
        outputs = [self.stem(x)]
        for group in self.groups:
            outputs.append(group(outputs[-1]))
        return outputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features [N, 4c] (FCD and precision/recall are computed in this space)."""
        return self.groups(self.stem(x)).amax(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
