"""The perceptual reconstruction loss: how far apart a frozen network sees an image and its reconstruction.

Distance as LPIPS computes it, without its learned per-channel weights: at each compared layer the features
are normalised to unit length along the channels, the squared differences are summed over channels and
averaged over positions; the layers' values are summed, then averaged over the batch. Layers: VGG16's
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (as LPIPS), or the metrics classifier's stem and three groups.
The network is frozen and in eval mode (its BatchNorm statistics never move); gradients flow through it to
the reconstruction only. It runs under the step's autocast; the normalisation and distance are in fp32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vaegan.config import LossConfig
from vaegan.objectives.feature_networks import VGG16_WEIGHTS, load_classifier, load_vgg16
from vaegan.runs.files import sha256_of

EPS = 1e-10  # LPIPS's guard against zero-length feature vectors


def _unit(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)


def perceptual_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Per-image distance [N] between two lists of layer activations [N, C, H, W] (see the module docstring)."""
    return sum((_unit(x) - _unit(y)).pow(2).sum(dim=1).mean(dim=(1, 2)) for x, y in zip(a, b, strict=True))


class PerceptualLoss(nn.Module):
    """loss(x_hat, x): the batch mean of the perceptual distance, differentiable in x_hat only."""

    def __init__(self, network: nn.Module, weights_sha256: str):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.weights_sha256 = weights_sha256  # recorded by the trainer, so a resume uses the same network

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # frozen: always in eval mode, whatever its parent is put in

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.network.layers(x)
        return perceptual_distance(self.network.layers(x_hat), target).mean()


def build_perceptual_loss(loss: LossConfig, cache: Path, device: torch.device) -> PerceptualLoss | None:
    """The configured perceptual loss on `device`, or None when loss.perceptual_weight is 0."""
    if loss.perceptual_weight == 0:
        return None
    if loss.perceptual_net == "vgg16":
        path = VGG16_WEIGHTS.path(loss.perceptual_weights, cache)
        network = load_vgg16(path, device)
    else:
        path = Path(loss.perceptual_weights)
        network = load_classifier(path, device)[0]
    return PerceptualLoss(network, sha256_of(path)).to(device)
